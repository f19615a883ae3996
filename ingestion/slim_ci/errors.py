"""The check's one error of its own: the check cannot run (exit 2), as against a change that fails it (exit 1)."""


class CiError(RuntimeError):
    """The check cannot run (missing production state, unknown base ref): not a failure of the change."""
