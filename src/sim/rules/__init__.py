"""The mechanisms of the model, one module each (no Mesa, no I/O, no Hydra).

``events`` (scenario events, air support, engagement draw), ``movement`` (target planning,
path choice, road moves, retreat), ``presence`` (projection of force), ``combat``
(Lanchester attrition and its aftermath), ``control`` (capture, vacancy, Kalyvas levels),
``redeploy`` (garrisons, pocket evacuation, reinforcement), ``insurgency`` (hidden ISIS
cells), ``civilians`` (grievance, displacement, FLEE destinations), ``recruitment``,
``ledger`` (the fighter ledger) and ``spatial`` (shared helpers).  Kernels take and return
numpy arrays so they can be tested on tiny hand-built grids with exact expected numbers
(tests/test_mechanisms.py, tests/test_rules.py).
"""
