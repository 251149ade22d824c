"""Email local parts for canaries, drawn in the mix of shapes of the host list's own.

Split from canary.generate (the factory keeps the address's domain and its uniqueness):
a local part is made of the canary's name as often as the list's are (in one of the
styles people use), or of a nickname or letters, with as many digits as the list's
addresses hold, and resampled so that canaries' shapes come out as the list's do.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable
from datetime import date

from canary.profile import EmailShape, HostProfile, email_shape
from canary.reference import NameBook
from canary.romaji import to_romaji


class LocalParts:
    """Draws local parts for one seed (the shapes drawn so far steer the next draws)."""

    def __init__(self, profile: HostProfile, names: NameBook, rng: random.Random) -> None:
        self.profile = profile
        self.names = names
        self.rng = rng
        self._drawn_shapes: Counter[EmailShape] = Counter()
        self._digit_mix: tuple[list[int], list[int]] | None = None

    def draw(self, surname_kana: str, given_kana: str, birth: date) -> str:
        s, g = to_romaji(surname_kana), to_romaji(given_kana)
        yy, r = f"{birth.year % 100:02d}", self.rng
        weights = [14, 12, 8, 10, 8, 6, 8, 4, 10, 8]

        def named() -> str:
            styles = [
                f"{g}.{s}",
                f"{g}{s}",
                f"{s}.{g}",
                f"{g[0]}{s}",
                f"{g}_{s}{yy}",
                f"{s}{g}{birth.month:02d}{birth.day:02d}",
                f"{g}{yy}",
                f"{s}-{g}",
                f"{g}.{s}{r.randint(1, 99)}",
                f"{s}{g[0]}{yy}",
            ]
            return r.choices(styles, weights=weights)[0]

        def unnamed() -> str:
            # Another name as a nickname, or letters, as people choose them (digits are
            # added by _shaped, as many as the list's addresses hold).
            other = to_romaji(
                self.names.given_for("F" if r.random() < 0.5 else "M", birth.year).draw(r).kana
            )
            letters = "".join(r.choices("abcdefghijklmnopqrstuvwxyz", k=r.randint(3, 8)))
            short = "".join(r.choices("abcdefghijklmnopqrstuvwxyz", k=r.randint(3, 6)))
            sep = r.choice("-_.")
            return r.choice(
                [
                    other,
                    f"{other}_{yy}",
                    letters,
                    f"{other}{sep}{short}",  # two words, as nicknames often are
                    f"{short}{sep}{other}",
                    f"{short}{other}",
                ]
            )

        return self.shaped(named, unnamed, f"{surname_kana} {given_kana}", birth.year)

    def shaped(
        self, named: Callable[[], str], unnamed: Callable[[], str], kana: str, year: int
    ) -> str:
        """A local part drawn so that canaries' shapes (see EmailShape) come out in the
        list's own mix: sampling-importance-resampling. Local parts are drawn (made of the
        name as often as the list's are), each with digits added up to a count drawn from
        the list's (the birth year's two among them, sometimes), so that the draws cover
        every shape a name of this length can take; one is kept with a weight of the
        shape's share in the list over its share among all draws so far."""
        r, shapes, prof = self.rng, self.profile.email_shapes, self.profile
        if sum(shapes.values()) < 30:
            return named() if r.random() < prof.email_name_share else unnamed()
        if self._digit_mix is None:
            counts: Counter[int] = Counter()
            for s, c in shapes.items():
                counts[s.digits] += c
            self._digit_mix = (list(counts), list(itertools.accumulate(counts.values())))
        digit_counts, cum = self._digit_mix
        yy = f"{year % 100:02d}"
        drawn = []
        for _ in range(48):
            local = named() if r.random() < prof.email_name_share else unnamed()
            short = r.choices(digit_counts, cum_weights=cum)[0] - sum(c.isdigit() for c in local)
            if short >= 2 and yy not in local and r.random() < 0.3:
                local += yy + "".join(r.choices("0123456789", k=short - 2))
            elif short > 0:
                local += "".join(r.choices("0123456789", k=short))
            drawn.append(local)
        by_name = kana if prof.email_shapes_named else ""
        keys = [email_shape(d, by_name, year) for d in drawn]
        self._drawn_shapes.update(keys)
        total, drawn_total = sum(shapes.values()), self._drawn_shapes.total()
        weights = [
            ((shapes[k] + 0.1) / total) / (self._drawn_shapes[k] / drawn_total) for k in keys
        ]
        return r.choices(drawn, weights=weights)[0]
