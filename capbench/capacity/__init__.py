"""``capbench capacity``: the highest load a deployment serves within its latency targets, and what it costs there.

:mod:`.attainment` decides one load (did enough requests meet the SLO, and how sure is that), :mod:`.search`
chooses the next load to probe, :mod:`.probe` runs one probe as its own ``capbench run`` process, and
:mod:`.orchestrate` runs the search and writes ``capacity.json``.
"""
