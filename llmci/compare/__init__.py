"""`llmci compare`: the baseline and the candidate's results tables, case by case."""
