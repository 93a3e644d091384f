"""spaCy, imported without letting thinc import torch.

thinc (spaCy's ML layer) imports torch whenever it is installed, only to offer PyTorch layers
that the CNN pipelines we use never touch. That import more than doubles the time to import spaCy
(2.7 s instead of 1.2 s here) and breaks the rule that ``import infoextract`` stays free of torch.
So, unless torch is already imported or ``ESFIT_SPACY_TORCH=1`` is set (needed for transformer
pipelines such as ``en_core_web_trf``), spaCy is imported while ``torch`` is marked unavailable;
the mark is removed afterwards, so later ``import torch`` elsewhere works normally.

Every module of ours that needs spaCy imports it from here.
"""

from __future__ import annotations

import os
import sys

_BLOCK = "spacy" not in sys.modules and "torch" not in sys.modules and os.environ.get("ESFIT_SPACY_TORCH") != "1"
if _BLOCK:
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` raise ImportError
try:
    import spacy  # noqa: E402
    from spacy.lang.en.stop_words import STOP_WORDS  # noqa: E402
    from spacy.language import Language  # noqa: E402
    from spacy.matcher import Matcher  # noqa: E402
    from spacy.tokens import Doc, Span, Token  # noqa: E402
finally:
    if _BLOCK and sys.modules.get("torch", 0) is None:
        del sys.modules["torch"]

__all__ = ["spacy", "STOP_WORDS", "Language", "Matcher", "Doc", "Span", "Token"]
