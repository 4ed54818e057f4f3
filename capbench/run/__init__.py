"""Running one benchmark: what it serves, its manifest, power and hardware around the runner, its records.

``execute`` is ``capbench run`` end to end; ``plan`` decides what a run serves; ``manifest`` writes ``run.json``;
``harness`` sequences one run; ``hardware`` and ``power`` resolve the machine and its sensor; ``progress``
reports; ``versions`` records the environment. Nothing heavy is imported here (vLLM's processes import
``capbench.run.versions``).
"""
