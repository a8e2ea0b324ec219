"""Who acts in the break book: names compared so that spelling cannot make one person two.

Maker/checker (a second person signs off) only holds if "the same person" cannot be faked by
how a name is typed. Two names are the same person when their :func:`identity_key` is equal:

1. NFKC (fullwidth ``ａｎｎ`` is ``ann``, ligatures are letters),
2. case folding (``ANN``, ``Ann``),
3. removing default-ignorable code points (zero-width space, soft hyphen, joiners, bidi
   controls, variation selectors: characters that draw nothing),
4. removing combining marks (``ann`` with a combining accent is ``ann``): this errs towards
   "same person", which for a checker only ever refuses a sign-off, never lets one through,
5. collapsing runs of white space.

A name whose letters mix scripts (a Cyrillic ``а`` among Latin ``nn``) is refused outright with
:class:`~reconkit.errors.IdentityError`, as is a name that is empty once normalised or holds
control characters. The mixes UTS #39 calls "highly restrictive" are allowed: Latin with Han
and Hiragana/Katakana, with Han and Bopomofo, or with Han and Hangul. A letter's script is read
from its Unicode character name (``CYRILLIC SMALL LETTER A``), the standard library having no
Script property; a letter with no name counts as a script of its own.

The name kept in the book is :func:`display_name`: NFKC with the invisible characters removed
and white space collapsed, in the case and accents it was typed in.
"""

from __future__ import annotations

import getpass
import re
import unicodedata

from .errors import IdentityError

__all__ = ["display_name", "identity_key", "os_login", "same_person", "scripts_of"]

# Default_Ignorable_Code_Point (Unicode 15.1, DerivedCoreProperties.txt): drawn as nothing.
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0000-\U000e0fff]")
_SPACE = re.compile(r"\s+")

# Script mixes a single name may use (UTS #39 "highly restrictive").
_ALLOWED_MIXES = (frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}), frozenset({"LATIN", "HAN", "BOPOMOFO"}),
                  frozenset({"LATIN", "HAN", "HANGUL"}))
_NAME_SCRIPTS = {"CJK": "HAN"}


def _visible(name: str) -> str:
    text = _IGNORABLE.sub("", unicodedata.normalize("NFKC", name))
    return _SPACE.sub(" ", text).strip()


def scripts_of(name: str) -> frozenset[str]:
    """The scripts of the letters of ``name`` (after NFKC), e.g. ``{"LATIN", "CYRILLIC"}``;
    digits, punctuation, spaces and marks belong to none."""
    found = set()
    for char in unicodedata.normalize("NFKC", name):
        if not unicodedata.category(char).startswith("L"):
            continue
        word = unicodedata.name(char, "UNNAMED").split(" ")[0]
        found.add(_NAME_SCRIPTS.get(word, word))
    return frozenset(found)


def display_name(name: str, *, what: str = "name") -> str:
    """The form of a name kept in the book: NFKC, invisible characters removed, white space
    collapsed.

    Raises
    ------
    IdentityError
        If nothing visible is left, the name holds a control character, or its letters mix
        scripts.
    """
    if not isinstance(name, str):
        raise IdentityError(f"the {what} must be text, not {type(name).__name__}")
    text = _visible(name)
    if not text:
        raise IdentityError(f"the {what} {name!r} is empty once invisible characters are removed")
    control = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if control is not None:
        raise IdentityError(f"the {what} {name!r} holds the control character U+{ord(control):04X}")
    scripts = scripts_of(text)
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        raise IdentityError(f"the {what} {name!r} mixes scripts ({', '.join(sorted(scripts)).lower()}); "
                            "type it in one script")
    return text


def identity_key(name: str) -> str:
    """What two names are compared by: NFKC, case folded, without invisible characters,
    combining marks or repeated white space (see the module docstring). Never raises: names
    already in a book are compared as they are."""
    folded = unicodedata.normalize("NFD", _visible(name).casefold())
    bare = "".join(c for c in folded if not unicodedata.category(c).startswith("M"))
    return _visible(bare)


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two names are the same person (``None`` is nobody and matches nothing)."""
    if a is None or b is None:
        return False
    return identity_key(a) == identity_key(b)


def os_login() -> str:
    """The operating-system login of this process (``unknown`` without a passwd entry): kept
    beside every name an action is taken under, so acting as someone else shows in the audit."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"
