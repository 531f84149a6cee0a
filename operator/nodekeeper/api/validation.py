"""Turn a pydantic ValidationError into the one sentence a user sees in a condition message."""

from pydantic import ValidationError


def explain(error: ValidationError, *, root: str = "spec") -> str:
    problems = []
    for item in error.errors()[:3]:
        where = ".".join([root, *(str(part) for part in item["loc"])])
        problems.append(f"{where}: {item['msg']}")
    more = error.error_count() - len(problems)
    suffix = f" (and {more} more)" if more > 0 else ""
    return (
        "the spec is invalid: " + "; ".join(problems) + suffix + "; fix the spec and apply it again"
    )
