"""Checks of the driver's scalar arguments, one home for every stage.

Each check returns the value in its plain Python type or raises a :class:`ValueError`
that names the argument and its bad value (``horizon_days=0 should be an integer >= 1``),
so that the CLI can print it as one line.
"""

import datetime

import numpy as np

__all__ = ["check_int", "check_iso_date"]


def check_int(name, value, least=None, most=None, *, rule=None):
    """``value`` as an ``int``, refused unless it is an integer in ``[least, most]``.

    Parameters
    ----------
    name : str
        The argument's name, as the user spells it.
    value : object
        Python and numpy integers are accepted; ``bool`` is not (``True`` is not a count).
    least, most : int, optional
        Inclusive bounds; None for none.
    rule : str, optional
        What the message says ``value`` should be, when the bounds say it badly (e.g.
        ``"a positive integer"``); default from the bounds.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        Naming ``name``, ``value`` and the rule.

    Examples
    --------
    >>> check_int("top_n", 3, 0)
    3
    >>> check_int("top_n", -1, 0)
    Traceback (most recent call last):
    ...
    ValueError: top_n=-1 should be an integer >= 0
    """
    whole = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not whole or (least is not None and value < least) or (most is not None and value > most):
        raise ValueError(f"{name}={value!r} should be {rule or _int_rule(least, most)}")
    return int(value)


def _int_rule(least, most):
    if least is not None and most is not None:
        return f"an integer in [{least}, {most}]"
    if least is not None:
        return f"an integer >= {least}"
    if most is not None:
        return f"an integer <= {most}"
    return "an integer"


def check_iso_date(name, value):
    """``value`` (``"YYYY-MM-DD"``, spaces around it allowed) as a :class:`datetime.date`.

    Parameters
    ----------
    name : str
        The argument's name.
    value : object

    Returns
    -------
    datetime.date

    Raises
    ------
    ValueError
        When ``value`` is not a string of exactly an ISO calendar date (``2024-02-30`` and
        ``2024-06-01T00:00`` are refused), naming ``name`` and ``value``.

    Examples
    --------
    >>> check_iso_date("cutoff", " 2024-06-01 ")
    datetime.date(2024, 6, 1)
    """
    try:
        if not isinstance(value, str) or len(value.strip()) != 10:
            raise ValueError
        return datetime.date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{name}={value!r} should be an ISO date (YYYY-MM-DD)") from None
