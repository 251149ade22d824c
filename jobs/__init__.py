"""The scheduled monitors: one APScheduler process (``canary jobs run``) whose jobs are thin
wrappers over library functions in ``canary/``, each run recorded in ``job_runs``.

    jobs.config     which jobs run when (TOML file, CANARY_* overrides)
    jobs.scheduler  the scheduler, its job store in the registry database, `jobs list`
    jobs.run        the wrapper every job runs in (registry, job run, never a crash)
    jobs.folders    drop folder, call-detail folder, outbox
    jobs.monitors   IMAP mailbox, canary domains, alert delivery
    jobs.upkeep     pool maintenance, event sealing, daily digest
"""
