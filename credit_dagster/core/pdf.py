"""Documents as PDF, rendered here (no browser, no network): the client letters, a person's data
export, the model's technical documentation. Every script the system has a font for; Arabic and
Hebrew shaped right to left (HarfBuzz); a character no font prints refuses the PDF, saying which."""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from pathlib import Path

import matplotlib
from fpdf import FPDF

from credit_dagster.core import settings

FONT = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
FONT_BOLD = FONT.with_name("DejaVuSans-Bold.ttf")
FONT_ITALIC, FONT_BOLD_ITALIC = FONT.with_name("DejaVuSans-Oblique.ttf"), FONT.with_name("DejaVuSans-BoldOblique.ttf")


class Unprintable(ValueError):
    """A character no font of this system prints: said, never dropped silently."""


# The scripts a bank's clients write in, from the fonts the system has (Debian: fonts-noto-core,
# fonts-noto-cjk, fonts-symbola; `.ci/run` and the image install them): tried in this order after
# DejaVu Sans for any character DejaVu lacks. A character no font covers refuses the PDF, saying so.
FALLBACK_FONTS = ("NotoSansCJK-Regular.ttc", "NotoSansArabic-Regular.ttf", "NotoSansHebrew-Regular.ttf",
                  "NotoSansDevanagari-Regular.ttf", "NotoSansBengali-Regular.ttf", "NotoSansGurmukhi-Regular.ttf",
                  "NotoSansGujarati-Regular.ttf", "NotoSansTamil-Regular.ttf", "NotoSansTelugu-Regular.ttf",
                  "NotoSansKannada-Regular.ttf", "NotoSansMalayalam-Regular.ttf", "NotoSansSinhala-Regular.ttf",
                  "NotoSansThai-Regular.ttf", "NotoSansLao-Regular.ttf", "NotoSansKhmer-Regular.ttf", "NotoSansMyanmar-Regular.ttf",
                  "NotoSansArmenian-Regular.ttf", "NotoSansGeorgian-Regular.ttf", "NotoSansEthiopic-Regular.ttf", "Symbola_hint.ttf")
FONT_ROOTS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"))


@functools.cache
def _fonts() -> tuple[tuple[str, Path, frozenset[int]], ...]:
    """(family, file, characters it covers) for DejaVu and each fallback font found on this system."""
    from fontTools.ttLib import TTFont

    found = [("DejaVu", FONT)]
    for name in FALLBACK_FONTS:
        path = next((f for root in FONT_ROOTS if root.exists() for f in root.rglob(name)), None)
        if path:
            found.append((name.split("-")[0].split(".")[0], path))
    fonts = []
    for family, path in found:
        with TTFont(str(path), fontNumber=0, lazy=True) as font:
            fonts.append((family, path, frozenset(font.getBestCmap())))
    return tuple(fonts)


def html_to_pdf(title: str, body: str) -> bytes:
    """A page's body (simple, escaped HTML) as a PDF, with the fonts its characters need."""
    (_, _, dejavu), *fallbacks = _fonts()
    text = {ord(c) for c in html.unescape(re.sub(r"<[^>]+>", "", body)) if not c.isspace() and unicodedata.category(c)[0] != "C"}
    beyond, needed = text - dejavu, []
    for family, path, chars in fallbacks:  # only the fonts this letter needs: a Latin letter loads none (a CJK font is 20 MB)
        if beyond & chars:
            needed.append((family, path))
            beyond -= chars
    if beyond:
        missing = "".join(sorted(chr(c) for c in beyond))[:20]
        raise Unprintable(f"no font on this system prints {missing!r} (U+{ord(missing[0]):04X}…): install the "
                          "Noto fonts (Debian: fonts-noto-core fonts-noto-cjk fonts-symbola)")
    document = FPDF(format="A4")
    document.set_title(title)
    document.set_creator(settings.current().lender_name)
    document.add_font("DejaVu", "", str(FONT))
    document.add_font("DejaVu", "B", str(FONT_BOLD))
    document.add_font("DejaVu", "I", str(FONT_ITALIC))
    document.add_font("DejaVu", "BI", str(FONT_BOLD_ITALIC))
    for family, path in needed:
        document.add_font(family, "", str(path))
    if needed:
        document.set_fallback_fonts([family for family, _ in needed], exact_match=False)
    document.set_text_shaping(True)  # joined Arabic letters, right-to-left runs, Indic clusters
    document.set_font("DejaVu", size=11)
    document.add_page()
    document.write_html(body, font_family="DejaVu")
    return bytes(document.output())
