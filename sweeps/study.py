"""Where a sweep's trials come from, as files seqicl writes: no Ray, nothing pickled.

``OptunaTrials``: an Optuna study in a JournalStorage file (``optuna.journal``, JSON lines)
beside the trial folders. Trial ``0007`` is study trial number 7. A trial asked but not yet
told (the driver died, or was interrupted) is asked again on resume with the same values, and
continues from its folder's training state, so a resumed sweep neither loses nor doubles a
trial. The sampler is seeded per trial number, so the values of trial n depend only on the
seed and the trials told before it was asked, not on what happened to the process.

``FixedTrials``: named configurations given up front (the seed re-runs); a name whose record
is over is done.

Both give ``next() -> (trial id, config, sampled values) | None`` and take
``tell(trial id, status, score)``.
"""
from __future__ import annotations

import copy
from pathlib import Path

from seqicl.config import set_dotted
from seqicl.train.record import FINAL, RecordError, RunRecord

from .search_space import Param

JOURNAL = "optuna.journal"


def trial_dir(exp_dir: Path, trial: str) -> Path:
    return exp_dir / "trials" / trial


def record_status(exp_dir: Path, trial: str) -> str | None:
    """The trial's own status, or None where it has no readable record yet."""
    try:
        return RunRecord(trial_dir(exp_dir, trial)).status()["status"]
    except RecordError:
        return None


def last_score(exp_dir: Path, trial: str) -> float | None:
    rows = RunRecord(trial_dir(exp_dir, trial)).kept_epochs()
    return rows[-1].get("best_val") if rows else None


def distributions(space: dict[str, Param]) -> dict:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    out = {}
    for key, p in space.items():
        if p.kind in ("loguniform", "uniform"):
            out[key] = FloatDistribution(p.args[0], p.args[1], log=p.kind == "loguniform")
        elif p.kind == "randint":
            out[key] = IntDistribution(p.args[0], p.args[1])
        elif p.kind == "choice":
            out[key] = CategoricalDistribution(list(p.args))
    return out


def open_study(path: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage = JournalStorage(JournalFileBackend(str(path)))
    return optuna.create_study(study_name="search", storage=storage, direction="maximize", load_if_exists=True)


class OptunaTrials:
    def __init__(self, exp_dir: Path, base_cfg: dict, space: dict[str, Param], seed: int, num_samples: int,
                 start: dict | None = None):
        """``start``: values of searched keys that the study's first trial takes (a known good
        configuration to search around); the keys it leaves out are sampled."""
        from optuna.trial import TrialState
        self.exp_dir, self.base_cfg, self.seed, self.num_samples = exp_dir, base_cfg, seed, num_samples
        self.start = start or {}
        self.dists = distributions(space)
        self.study = open_study(exp_dir / JOURNAL)
        self.resume: list[int] = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            status = record_status(exp_dir, self.name(t.number))
            if status in FINAL:   # the trial ended but the driver died before it told the study
                self.tell(self.name(t.number), status, last_score(exp_dir, self.name(t.number)))
            else:
                self.complete_values(t)
                self.resume.append(t.number)

    def sampler(self, number: int):
        """Trial n's sampler: seeded by its number, so a trial's values do not depend on which
        process asked for them."""
        import optuna
        return optuna.samplers.TPESampler(seed=self.seed * 1_000_003 + number)

    def complete_values(self, t) -> None:
        """A driver killed inside ``ask`` leaves its trial in the journal with only some of its
        values (or none): resumed as it is, it would train the base config under the trial's
        name. Draw the missing ones as that ask did: the same seeded sampler, every searched key
        in order (values already stored take their draw too), fixed ones (``start``) taken as given."""
        missing = [key for key in self.dists if key not in t.params]
        if not missing:
            return
        sampler, fixed = self.sampler(t.number), t.system_attrs.get("fixed_params", {})
        for key, dist in self.dists.items():
            value = fixed[key] if key in fixed else sampler.sample_independent(self.study, t, key, dist)
            if key in missing:
                self.study._storage.set_trial_param(t._trial_id, key, dist.to_internal_repr(value), dist)

    @staticmethod
    def name(number: int) -> str:
        return f"{number:04d}"

    def started(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    def remaining(self) -> int:
        return len(self.resume) + max(0, self.num_samples - self.started())

    def config(self, params: dict) -> dict:
        cfg = copy.deepcopy(self.base_cfg)
        for key, value in params.items():
            set_dotted(cfg, key, value)
        return cfg

    def next(self) -> tuple[str, dict, dict] | None:
        if self.resume:
            t = self.study.trials[self.resume.pop(0)]
            return self.name(t.number), self.config(t.params), dict(t.params)
        n = self.started()
        if n >= self.num_samples:
            return None
        self.study.sampler = self.sampler(n)
        if n == 0 and self.start:
            self.study.enqueue_trial(self.start)   # a waiting trial: the ask below takes it
        t = self.study.ask(fixed_distributions=self.dists)
        return self.name(t.number), self.config(t.params), dict(t.params)

    def ended_before(self, names: list[str]) -> list[str]:
        """Of the trials whose records say they are over, those this run will not train again."""
        return names   # every trial of the study; the cut ones' records say "running"

    def requeue(self, trial: str) -> None:
        """Hand ``trial`` out again next (it could not run: out of GPU memory); the study still
        has it running, so it keeps its number and parameters."""
        self.resume.insert(0, int(trial))

    def tell(self, trial: str, status: str, score: float | None) -> None:
        """Stopped and finished trials count with their best score so far (what ASHA compared);
        diverged ones with -1, below every healthy trial; errored ones as failed."""
        from optuna.trial import TrialState
        number = int(trial)
        if self.study.trials[number].state != TrialState.RUNNING:
            return
        if status == "errored" or (score is None and status != "diverged"):
            self.study.tell(number, state=TrialState.FAIL)
        else:
            self.study.tell(number, -1.0 if status == "diverged" else float(score))


class FixedTrials:
    def __init__(self, exp_dir: Path, jobs: dict[str, dict]):
        self.exp_dir, self.jobs = exp_dir, jobs
        # a re-run cut short (time budget) or failed continues from its state when run again
        self.todo = [name for name in sorted(jobs) if record_status(exp_dir, name) not in ("finished", "diverged")]

    def remaining(self) -> int:
        return len(self.todo)

    def ended_before(self, names: list[str]) -> list[str]:
        """Of the trials whose records say they are over, those of this run's jobs it will not
        train again (a failed or cut re-run is trained again; other jobs' folders are not its own)."""
        return [n for n in names if n in self.jobs and n not in self.todo]

    def requeue(self, trial: str) -> None:
        """Hand ``trial`` out again next (it could not run: out of GPU memory)."""
        self.todo.insert(0, trial)

    def next(self) -> tuple[str, dict, dict] | None:
        if not self.todo:
            return None
        name = self.todo.pop(0)
        return name, copy.deepcopy(self.jobs[name]), {}

    def tell(self, trial: str, status: str, score: float | None) -> None:
        pass  # the records are the whole state
