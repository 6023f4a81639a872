"""The ``data`` stage: the built-in synthetic log, or the schema of the given inputs."""

from models.stages.base import Stage

__all__ = ["DataStage"]


class DataStage(Stage):
    """Generates the built-in log (:mod:`models.data_stage`) when no input is given;
    otherwise reads the inputs' schema (recorded as nothing: the inputs are the user's)."""

    name = "data"
    runner = "models.data_stage:generate_data"
    options_key = "generate"
    provides = ("inputs", "schema")

    def records(self, run):
        return run.generated

    def compute(self, run):
        if not run.generated:
            _use_inputs(run)
            return []
        from models.data_stage import generate_data

        truth = generate_data(
            run.fs.uri(run.data_path),
            self.options_of(run),
            overwrite=run.overwrite,
            reporter=run.reporter,
        )
        self.load(run, None)
        keys = ("seed", "n_customers", "lines_total", "rejects_by_reason")
        return [
            {
                "stage": "data",
                "status": "completed",
                "output": run.fs.uri(run.data_path),
                "lines": None,
                "rows_written": truth["lines_total"],
                "seconds": truth["seconds"],
                "truth": {k: truth[k] for k in keys},
            }
        ]

    def load(self, run, entries):
        run.inputs = [run.fs.uri(run.data_path)]
        run.schema = None
        _use_inputs(run)

    def is_kept(self, run, entry):
        from models.data_stage import data_files

        return all(run.fs.exists(f) for f in data_files(run.data_path))


def _use_inputs(run):
    if run.schema is None:
        from models.inputs import detect_schema

        run.schema = detect_schema(run.inputs)
