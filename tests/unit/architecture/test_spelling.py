"""American spelling in identifiers (one name, one meaning): no Python name, CLI flag or JSON key in the project's
code uses a British spelling of a word it names (``utilisation``, ``normalise``, ``colour``...).

Prose in comments and docstrings is not checked; string literals are, because flags, summary keys and column
names are strings. Old spellings kept on purpose as aliases (``--utilisation``, ``--no-honour-max-tokens``,
``--pricing amortised``) are listed in :data:`ALIASES`.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from tests.support.paths import REPO

BRITISH = re.compile(
    r"(?i)(utilis|normalis|honour|colour|amortis|behaviour|initialis|serialis|recognis|minimis|maximis|centre"
    r"|optimis|summaris|analys(e|ing)|quantis|labell(ed|ing)|favour)"
)
ALIASES = {'"--utilisation"', '"--no-honour-max-tokens"', '"amortised"'}
FOLDERS = ("capbench", "metrics", "leaderboard", "benchmarks", "scripts", "tests")


def _offenders(path: Path) -> list[str]:
    found = []
    with path.open("rb") as handle:
        for token in tokenize.tokenize(handle.readline):
            if token.type == tokenize.STRING and (token.string.startswith(('"""', "'''")) or token.string in ALIASES):
                continue  # docstrings are prose
            if token.type in (tokenize.NAME, tokenize.STRING) and BRITISH.search(token.string):
                found.append(f"{path.relative_to(REPO)}:{token.start[0]}: {token.string[:60]}")
    return found


def test_identifiers_use_american_spelling() -> None:
    paths = [p for folder in FOLDERS for p in (REPO / folder).rglob("*.py") if p.resolve() != Path(__file__).resolve()]
    assert len(paths) > 100
    offenders = [line for path in paths for line in _offenders(path)]
    assert offenders == [], "\n".join(offenders)


def test_the_check_sees_a_british_name() -> None:
    source = 'def normalise_key(x):\n    return {"utilisation": x}\n'
    tokens = tokenize.tokenize(io.BytesIO(source.encode()).readline)
    assert [t.string for t in tokens if t.type in (tokenize.NAME, tokenize.STRING) and BRITISH.search(t.string)] == [
        "normalise_key",
        '"utilisation"',
    ]
