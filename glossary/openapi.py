"""The glossary API's OpenAPI pieces: error responses and the request bodies FastAPI can't infer.

Uploads and drafts read their bodies by hand (streamed, size-checked), so their request bodies
are described here for the served document.
"""

from __future__ import annotations

from typing import Any

from glossary.extract import DEFAULT_MAX_TERMS, MAX_TERMS
from glossary.formats import IMPORT_FORMATS
from glossary.schemas import GlossaryCreate
from kernel.errors import ErrorEnvelope

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorEnvelope, "description": text}
    for code, text in {
        401: "Missing, unknown or revoked API key.",
        404: "No such glossary for this tenant.",
        422: "Invalid request or glossary; detail.report lists every problem.",
    }.items()
}
UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    **ERRORS,
    413: {"model": ErrorEnvelope, "description": "File larger than the limit."},
    415: {"model": ErrorEnvelope, "description": "Not CSV, TSV, JSON, TBX or TMX."},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **UPLOAD_ERRORS,
    412: {"model": ErrorEnvelope, "description": "If-Match does not match the current ETag."},
}


def upload_body_doc() -> dict[str, Any]:
    json_schema = GlossaryCreate.model_json_schema(ref_template="#/components/schemas/{model}")
    json_schema.pop("$defs", None)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "CSV, TSV, JSON, TBX-Basic or TMX 1.4; UTF-8 or "
                                "UTF-16.",
                            },
                            "name": {"type": "string", "maxLength": 200},
                            "format": {
                                "type": "string",
                                "enum": list(IMPORT_FORMATS),
                                "description": "Detected from the content when absent.",
                            },
                            "source_language": {
                                "type": "string",
                                "description": "Overrides the file's source language.",
                            },
                            "target_language": {
                                "type": "string",
                                "description": "For headerless two-column files only.",
                            },
                        },
                    }
                },
                "application/json": {"schema": json_schema},
            },
        }
    }


def extract_body_doc() -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "array",
                                "items": {"type": "string", "format": "binary"},
                                "description": "One or more documents (repeat the field): "
                                "PDF, PPTX, HTML, Markdown or plain text; each up to the "
                                "glossary upload limit.",
                            },
                            "langs": {
                                "type": "string",
                                "description": "Target languages, comma-separated (zh,de); "
                                "the field may repeat.",
                            },
                            "max_terms": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_TERMS,
                                "default": DEFAULT_MAX_TERMS,
                            },
                            "use_llm": {
                                "type": "boolean",
                                "description": "Filter and translate with the configured LLM "
                                "(default: true when one is configured).",
                            },
                            "save": {
                                "type": "boolean",
                                "default": False,
                                "description": "Also store the draft as a glossary.",
                            },
                            "name": {"type": "string", "maxLength": 200},
                        },
                    }
                }
            },
        }
    }


ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "Missing or wrong admin key."},
    403: {"model": ErrorEnvelope, "description": "Admin API disabled (no RASST_ADMIN_KEY)."},
    404: {"model": ErrorEnvelope, "description": "No such tenant or key."},
}
