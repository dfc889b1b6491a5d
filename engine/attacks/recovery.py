"""How much of the forgotten gap an attack brings back, on the task's headline Df metric (pure Python).

    recovery = (Df_after_attack - Df_unlearned) / (Df_original - Df_unlearned)

0 = nothing comes back, 1 = Df is as well served as by the original, < 0 = the attack made Df worse still.
`points` is the numerator alone and `gap` the denominator, both in percentage points whatever the metric's stored
unit (recall and classification accuracy are stored in percent, people data's four-option accuracy as a 0-1
fraction: sessions.numbers.shown puts both in points), so runs and pulse sessions compare. There is no gap to recover when unlearning did not
lower Df (Df_original - Df_unlearned within sessions.numbers.SAME_SCORE of 0 or below): the fraction is then
None, the points are still reported. An unchanged score can differ from itself by float32 rounding (2.5e-7
points, measured on a one-unit recall): dividing by that would report a recovery of about 1e8.
"""
from __future__ import annotations

from sessions.numbers import SAME_SCORE, shown

# retrieval's recall mean, classification's accuracy (sessions.verdict's); people data's forget accuracy, image and
# text-only averaged (engine/attacks/people.with_headline adds it to a pulse run's metrics)
HEADLINES = ("df.r_mean", "df.accuracy", "forget.accuracy")


def headline(metrics: dict[str, float]) -> str | None:
    """The task's headline Df metric among flat `metrics`, or None."""
    return next((name for name in HEADLINES if name in metrics), None)


def recovery(name: str, original: float, unlearned: float, after: float) -> dict:
    """Of headline `name`: {"points": after - unlearned, "fraction": that / (original - unlearned) or None,
    "gap": original - unlearned}, points and gap in percentage points."""
    gap = original - unlearned
    points = after - unlearned
    return {"points": shown(name, points), "fraction": points / gap if gap > SAME_SCORE else None,
            "gap": shown(name, gap), "unit": "points"}  # unit: documents before it stored people data's as fractions


def rephrase_recovery(name: str, original: float, unlearned: float, original_rephrased: float,
                      rephrased: float) -> dict:
    """Of the forgetting on the exact inputs (`original - unlearned`), the share that does not hold on rephrased
    ones: {"points": gap - (original_rephrased - rephrased), "fraction": that / gap, ...}. Rephrased inputs are
    harder for any model, so the original's score on them is the reference: `recovery` against the unlearned
    model's exact score read that difficulty as forgetting (a model never unlearned "lost" 18 points, and
    MultiDelete's -43% was +30% of its forgetting not reaching the rephrased inputs)."""
    gap = original - unlearned
    points = gap - (original_rephrased - rephrased)
    return {"points": shown(name, points), "fraction": points / gap if gap > SAME_SCORE else None,
            "gap": shown(name, gap), "unit": "points", "against": "the original on the rephrased inputs"}
