"""The ground every layer stands on: one-line user errors, where data and runs live, atomic writes."""
