"""The glossary domain: model, import/export formats, validation, storage, REST router."""
