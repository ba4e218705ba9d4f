"""Alert rules, evaluation, dedup, repeat, snooze and resolve."""
