#!/usr/bin/env bash
# After ../shared/gpu/make-wheels.sh: drop what seqicl never imports on the card, so that the
# working tree plus .whl stays under the device tool's 64 MiB carry limit (the tree grows with
# results/; on 2026-12-06 tree 14.5 MB + bundle 55 MB was refused).
# - Optuna needs sqlalchemy, alembic, mako and greenlet only for its RDB storage; seqicl keeps its
#   studies in a JournalStorage file (sweeps/study.py). The sweeps of 2026-12-06 ran on the card
#   without them.
# - ray's wheel loses rllib, serve, llm and the dashboard's web client (Tune imports none of them;
#   the dashboard is off unless --dashboard, which the device scripts never pass). A smoke sweep on
#   the CPU ran with those folders moved out of the installed ray, and one on the H100 (2026-12-06)
#   from the slimmed bundle.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
aside=${ASIDE:-/tmp/whl-aside}; mkdir -p "$aside"
for w in .whl/sqlalchemy-* .whl/greenlet-* .whl/alembic-* .whl/mako-*; do [ -e "$w" ] && mv "$w" "$aside/"; done
python3 - <<'PY'
import glob, os, zipfile
DROP = ("ray/rllib/", "ray/serve/", "ray/llm/", "ray/dashboard/client/")
src_path = glob.glob(".whl/ray-*.whl")[0]
with zipfile.ZipFile(src_path) as src:
    keep = [i for i in src.infolist() if not i.filename.startswith(DROP)]
    if len(keep) < len(src.infolist()):
        names = {i.filename for i in keep}
        with zipfile.ZipFile(src_path + ".tmp", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            for info in keep:
                data = src.read(info.filename)
                if info.filename.endswith(".dist-info/RECORD"):  # pip checks nothing against it, but keep it true
                    data = ("\n".join(r for r in data.decode().splitlines() if r.split(",")[0] in names) + "\n").encode()
                dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.replace(src_path + ".tmp", src_path)
PY
echo "tree $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) bytes + .whl $(du -sb .whl | cut -f1) bytes (limit $((64 * 1024 * 1024)))"
