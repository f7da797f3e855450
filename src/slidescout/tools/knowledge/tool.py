"""The ``lookup`` tool: the agent's reference shelf (local corpus + concept graph)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from slidescout.tools.base import ToolResult, tool
from slidescout.tools.knowledge import lookup as kb_lookup


@tool
def lookup(query: str, k: Annotated[int, Field(ge=1, le=20)] = 5) -> ToolResult:
    """Look up pathology reference knowledge: histological hallmarks of tumours and normal organs,
    how to tell two entities apart, markers (IHC) of an entity, Gleason patterns and ISUP grade
    groups (say biopsy or prostatectomy when there is a third pattern), mitotic grading, and
    exact criteria tables (Nottingham, FNCLCC, WHO/ISUP renal grade, FIGO, oral cavity depth of
    invasion, HER2, ER, p16). Answers name their published source (WHO, ISUP, CAP, AJCC); a
    topic the reference does not cover is answered "Not covered" with the nearest entries.

    Args:
        query: what to look up, e.g. "features of lung adenocarcinoma", "distinguish LUAD from LUSC",
            "ISUP grade for Gleason 4+3", "Nottingham total score 7", "cribriform glands".
        k: how many passages to return when searching text.
    """
    res = kb_lookup(query, k=k)
    return ToolResult(
        text=res.text,
        data={
            "kind": res.kind,
            "citations": [h.citation for h in res.hits],
            "sources": [h.reference for h in res.hits],
        },
    )


TOOLS = [lookup]
