"""The coordinator: tasks, jobs, stage-level grants on a lane pool, and the policies that decide."""
