"""Markup an attacker would type, and a check that a page rendered it as text."""

from __future__ import annotations

from html.parser import HTMLParser

# a tag and an attribute nobody else uses, a script, a handler, and a Markdown link to a script
ATTACK = "<fuzz-tag data-fuzz=1>x</fuzz-tag><img src=x onerror=alert(1) data-fuzz=2><script>alert(3)</script>[click](javascript:alert(4))"
SEEN_AS_TEXT = "&lt;fuzz-tag"  # what the escaped attack looks like in the page's source


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        if tag == "fuzz-tag" or "data-fuzz" in names or "onerror" in names:
            self.found.append(f"<{tag} {names}>")
        for attr in ("href", "src"):
            if (names.get(attr) or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {attr}={names[attr]}>")


def injected(page: str) -> list[str]:
    """The elements of `page` that the attack made (none, if everything was escaped)."""
    parser = _Elements()
    parser.feed(page)
    return parser.found
