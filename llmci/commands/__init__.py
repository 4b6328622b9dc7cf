"""Click commands: parse options, call the library, map the result to an exit code. Nothing else."""
