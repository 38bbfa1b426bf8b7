"""What may be written into a record: admin-defined custom fields, and the plain rules (text,
tags, owners, ids) that every contact, company and deal field follows.

Custom fields are defined per entity (contact, company, deal) by an admin; their values live in the
record's JSON `custom_fields` column, keyed by the definition's slug. Values are checked and put in
one canonical form on the way in (numbers as JSON numbers, money as {"amount": "12.50", "currency":
"EUR"}, dates as ISO `YYYY-MM-DD`, choices spelled as defined), so that filters can compare them in
SQL on SQLite and PostgreSQL alike. A definition's type never changes after creation and deleting a
definition removes its values everywhere, so a stored value always matches its definition's type
(PostgreSQL would refuse to cast a stray text to a number mid-query).

`validate_custom_fields(session, entity, values)` and `merge_custom_fields(current, changes)` are
the two calls other services (deals) need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypedDict

from sqlalchemy import ColumnElement, func, select, type_coerce, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session

from server.crm.errors import Conflict, DomainError, NotFound
from server.crm.paging import _decode as decode_cursor
from server.crm.timeline import decode_cursor as decode_timeline_cursor
from server.models import Company, Contact, CustomFieldDefinition, Deal, User

ENTITIES = ("contact", "company", "deal")
FIELD_TYPES = ("text", "number", "money", "date", "choice")
RANGE_TYPES = frozenset({"number", "money", "date"})
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_TEXT_VALUE = 2000
MAX_CHOICES = 200
MAX_NUMBER = Decimal(10) ** 15
MAX_MONEY = Decimal(10) ** 12
CURRENCY_PATTERN = re.compile(r"^[A-Z]{3}$")
# Ids are 32-bit integers on PostgreSQL (the migrations' Integer columns): a larger id cannot
# exist, and binding one fails there (as past 64 bits on SQLite), so it is refused up front.
MAX_DB_ID = 2**31 - 1
MAX_TAGS = 50
MAX_TAG_LENGTH = 100


# -- plain field rules -------------------------------------------------------------------------


def clean_text(value: str, field: str, *, max_length: int, required: bool = False) -> str:
    """Trimmed text that fits its column; NUL characters are refused because PostgreSQL cannot
    store them (a 500 otherwise)."""
    text = value.strip()
    if "\x00" in text:
        raise DomainError(f"{field} must not contain NUL characters", field=field)
    if len(text) > max_length:
        raise DomainError(f"{field} is longer than {max_length} characters", field=field)
    if required and not text:
        raise DomainError(f"{field} must not be empty", field=field)
    return text


def clean_tag(value: str, field: str = "tags") -> str:
    """Tags compare case-insensitively, so they are kept lower-case with single spaces; ';' and ','
    separate tags in CSV files and are not allowed inside one."""
    tag = " ".join(clean_text(value, field, max_length=MAX_TAG_LENGTH).split()).lower()
    if not tag:
        raise DomainError("a tag must not be empty", field=field)
    if ";" in tag or "," in tag:
        raise DomainError(f"a tag must not contain ';' or ',' ({tag!r})", field=field)
    return tag


def clean_tags(values: Sequence[str], field: str = "tags") -> list[str]:
    tags: list[str] = []
    for value in values:
        tag = clean_tag(value, field)
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        raise DomainError(f"at most {MAX_TAGS} tags", field=field)
    return tags


def valid_id(value: int) -> bool:
    """Ids outside the database's integer range cannot exist (and SQLite cannot even bind them)."""
    return 0 < value <= MAX_DB_ID


def check_owner(session: Session, owner_id: int | None, field: str = "owner_id") -> int | None:
    if owner_id is None:
        return None
    if not valid_id(owner_id) or session.get(User, owner_id) is None:
        raise DomainError(f"there is no user {owner_id}", field=field)
    return owner_id


def like_prefix(text: str) -> str:
    """`text` with LIKE's wildcards escaped (use with escape="\\"), for prefix searches."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def check_cursor(cursor: str | None, kind: Literal["text", "datetime"] | type[str]) -> None:
    """Refuse a list cursor (`server.crm.paging`) whose sort value is not of the sort's type
    before it reaches SQL: a hand-made cursor must give a 400, not a database error. `kind` is
    "text" (also spelled `str`) or "datetime"."""
    if not cursor:
        return
    value, ident = decode_cursor(cursor)
    if kind == "text" or kind is str:
        good = isinstance(value, str) and "\x00" not in value
    else:
        good = isinstance(value, datetime) and value.tzinfo is not None
    if not good or not valid_id(ident):
        raise DomainError("the cursor is not one this API gave out for this sort", field="cursor")


def check_timeline_cursor(cursor: str | None) -> None:
    """The same for timeline cursors (`server.crm.timeline`), whose id is not range-checked there:
    an id beyond 64 bits cannot even be bound on SQLite."""
    if not cursor:
        return
    _when, ident = decode_timeline_cursor(cursor)
    if not valid_id(ident):
        raise DomainError("the cursor is not one this API gave out", field="cursor")


# -- definitions -------------------------------------------------------------------------------


class DefinitionFields(TypedDict, total=False):
    entity: str
    key: str
    label: str
    field_type: str
    choices: list[str]
    position: int


def list_definitions(session: Session, entity: str | None = None) -> list[CustomFieldDefinition]:
    query = select(CustomFieldDefinition).order_by(
        CustomFieldDefinition.entity, CustomFieldDefinition.position, CustomFieldDefinition.id
    )
    if entity is not None:
        query = query.where(CustomFieldDefinition.entity == _entity(entity))
    return list(session.scalars(query))


def definitions_by_key(session: Session, entity: str) -> dict[str, CustomFieldDefinition]:
    return {d.key: d for d in list_definitions(session, entity)}


def get_definition(session: Session, definition_id: int) -> CustomFieldDefinition:
    definition = (
        session.get(CustomFieldDefinition, definition_id) if valid_id(definition_id) else None
    )
    if definition is None:
        raise NotFound(f"there is no custom field {definition_id}")
    return definition


def create_definition(session: Session, fields: DefinitionFields) -> CustomFieldDefinition:
    entity = _entity(fields.get("entity", ""))
    key = fields.get("key", "")
    if not KEY_PATTERN.match(key):
        raise DomainError(
            "key must be a slug: a lower-case letter, then letters, digits or '_' (at most 64)",
            field="key",
        )
    field_type = fields.get("field_type", "")
    if field_type not in FIELD_TYPES:
        raise DomainError(f"field_type must be one of {', '.join(FIELD_TYPES)}", field="field_type")
    label = clean_text(fields.get("label", ""), "label", max_length=200, required=True)
    choices = _choices(field_type, fields.get("choices"))
    if session.scalar(
        select(CustomFieldDefinition.id).where(
            CustomFieldDefinition.entity == entity, CustomFieldDefinition.key == key
        )
    ):
        raise Conflict(f"a {entity} field '{key}' already exists", field="key")
    position = fields.get("position")
    if position is None:
        position = (
            session.scalar(
                select(func.max(CustomFieldDefinition.position)).where(
                    CustomFieldDefinition.entity == entity
                )
            )
            or 0
        ) + 1
    definition = CustomFieldDefinition(
        entity=entity,
        key=key,
        label=label,
        field_type=field_type,
        choices=choices,
        position=position,
    )
    session.add(definition)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"a {entity} field '{key}' already exists", field="key") from None
    return definition


def update_definition(
    session: Session, definition_id: int, fields: DefinitionFields
) -> CustomFieldDefinition:
    """Label, choices and position may change; entity, key and type may not (stored values and
    filters depend on them: delete the field and define a new one instead)."""
    definition = get_definition(session, definition_id)
    for fixed in ("entity", "key", "field_type"):
        if fixed in fields and fields[fixed] != getattr(definition, fixed):
            raise DomainError(
                f"{fixed} cannot change once a field is defined; delete it and define a new one",
                field=fixed,
            )
    if "label" in fields:
        definition.label = clean_text(fields["label"], "label", max_length=200, required=True)
    if "choices" in fields:
        definition.choices = _choices(definition.field_type, fields["choices"])
    if "position" in fields:
        definition.position = fields["position"]
    return definition


def delete_definition(session: Session, definition_id: int) -> None:
    """Remove a definition and its values from every record of its entity."""
    definition = get_definition(session, definition_id)
    model = _MODELS[definition.entity]
    _strip_key(session, model, definition.key)
    session.delete(definition)


def _entity(value: str) -> str:
    if value not in ENTITIES:
        raise DomainError(f"entity must be one of {', '.join(ENTITIES)}", field="entity")
    return value


def _choices(field_type: str, given: Sequence[str] | None) -> list[str]:
    if field_type != "choice":
        if given:
            raise DomainError("only choice fields have choices", field="choices")
        return []
    choices: list[str] = []
    for raw in given or []:
        choice = clean_text(raw, "choices", max_length=200, required=True)
        if choice.lower() in (c.lower() for c in choices):
            raise DomainError(f"choice {choice!r} is listed twice", field="choices")
        choices.append(choice)
    if not choices:
        raise DomainError("a choice field needs at least one choice", field="choices")
    if len(choices) > MAX_CHOICES:
        raise DomainError(f"at most {MAX_CHOICES} choices", field="choices")
    return choices


_MODELS: dict[str, type[Contact] | type[Company] | type[Deal]] = {
    "contact": Contact,
    "company": Company,
    "deal": Deal,
}


def _strip_key(
    session: Session, model: type[Contact] | type[Company] | type[Deal], key: str
) -> None:
    column = model.custom_fields
    path = f'$."{key}"'  # key is a slug: nothing to escape
    has_key: ColumnElement[bool]
    without: ColumnElement[Any]
    if session.get_bind().dialect.name == "postgresql":
        as_jsonb = type_coerce(column, JSONB)
        has_key = as_jsonb.has_key(key)
        without = as_jsonb.op("-", return_type=JSONB)(key)
    else:
        has_key = func.json_type(column, path).is_not(None)
        without = func.json_remove(column, path)
    session.execute(
        update(model)
        .where(has_key)
        .values(custom_fields=without, version=model.version + 1)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


# -- values ------------------------------------------------------------------------------------


def validate_custom_fields(
    session: Session, entity: str, values: Mapping[str, Any]
) -> dict[str, Any]:
    """Check `values` against the entity's definitions and return them in canonical form.

    A key that is not defined, or a value of the wrong shape, is refused with a DomainError whose
    field is `custom_fields.<key>`. None or "" means "clear this field" and is kept as None, so
    `merge_custom_fields` removes it.
    """
    if not values:
        return {}
    definitions = definitions_by_key(session, _entity(entity))
    result: dict[str, Any] = {}
    for key, value in values.items():
        definition = definitions.get(key)
        if definition is None:
            known = ", ".join(sorted(definitions)) or "none are defined"
            raise DomainError(
                f"there is no {entity} custom field '{key}' (known: {known})",
                field=f"custom_fields.{key}",
            )
        result[key] = normalise_value(definition, value)
    return result


def merge_custom_fields(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """`current` with `changes` applied: None removes a key, anything else sets it."""
    merged = dict(current)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def normalise_value(definition: CustomFieldDefinition, value: Any) -> Any:
    """One value in canonical form (None to clear), or a DomainError naming the field."""
    field = f"custom_fields.{definition.key}"
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    kind = definition.field_type
    if kind == "text":
        if not isinstance(value, str):
            raise DomainError(f"{field} must be text", field=field)
        return clean_text(value, field, max_length=MAX_TEXT_VALUE)
    if kind == "number":
        number = _decimal(value, field, "a number")
        if abs(number) >= MAX_NUMBER:
            raise DomainError(f"{field} is too large", field=field)
        return int(number) if number == number.to_integral_value() else float(number)
    if kind == "money":
        return _money(value, field)
    if kind == "date":
        return _date(value, field).isoformat()
    if kind == "choice":
        if not isinstance(value, str):
            raise DomainError(f"{field} must be one of the choices", field=field)
        wanted = value.strip().lower()
        for choice in definition.choices:
            if str(choice).lower() == wanted:
                return choice
        raise DomainError(
            f"{field} must be one of: {', '.join(map(str, definition.choices))}", field=field
        )
    raise DomainError(f"{field} has an unknown type {kind!r}", field=field)  # pragma: no cover


def _decimal(value: Any, field: str, what: str, *, label: str | None = None) -> Decimal:
    """`value` as a finite Decimal; errors name `field` and call it `label` (default: field)."""
    label = label or field
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DomainError(f"{label} must be {what}", field=field)
    if isinstance(value, float) and not math.isfinite(value):
        raise DomainError(f"{label} must be a finite number", field=field)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise DomainError(f"{label} must be {what}, not {value!r}", field=field) from None
    if not number.is_finite():
        raise DomainError(f"{label} must be a finite number", field=field)
    return number


def _money(value: Any, field: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or set(value) - {"amount", "currency"}:
        raise DomainError(f'{field} must be {{"amount": "12.50", "currency": "EUR"}}', field=field)
    if value.get("amount") is None or value.get("currency") is None:
        raise DomainError(f"{field} needs both an amount and a currency", field=field)
    amount = _decimal(value["amount"], field, "a number", label=f"{field}.amount")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -4:
        raise DomainError(f"{field}.amount has more than 4 decimals", field=field)
    if abs(amount) >= MAX_MONEY:
        raise DomainError(f"{field}.amount is too large", field=field)
    currency = value["currency"]
    if not isinstance(currency, str) or not CURRENCY_PATTERN.match(currency.strip().upper()):
        raise DomainError(f"{field}.currency must be a 3-letter code such as EUR", field=field)
    text = f"{amount:.2f}" if isinstance(exponent, int) and exponent >= -2 else f"{amount:f}"
    return {"amount": text, "currency": currency.strip().upper()}


def _date(value: Any, field: str) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise DomainError(f"{field} must be a date (YYYY-MM-DD)", field=field)
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise DomainError(
            f"{field} must be a date (YYYY-MM-DD), not {value!r}", field=field
        ) from None


# -- filters -----------------------------------------------------------------------------------


def custom_field_conditions(
    session: Session,
    entity: str,
    column: InstrumentedAttribute[dict[str, Any]],
    params: Mapping[str, Any],
) -> list[ColumnElement[bool]]:
    """WHERE clauses for `cf.<key>=value` and, on number/money/date fields, `cf.<key>.gte=` and
    `cf.<key>.lte=`. Any other parameter name is refused (a typo must not silently match all)."""
    if not params:
        return []
    definitions = definitions_by_key(session, entity)
    conditions: list[ColumnElement[bool]] = []
    for name, raw in params.items():
        if not name.startswith("cf."):
            raise DomainError(f"unknown parameter '{name}'", field=name)
        key, op = name[3:], "eq"
        for suffix in ("gte", "lte"):
            if key.endswith("." + suffix):
                key, op = key[: -len(suffix) - 1], suffix
        definition = definitions.get(key)
        if definition is None:
            raise DomainError(f"there is no {entity} custom field '{key}'", field=name)
        if not isinstance(raw, str):
            raise DomainError(f"give {name} once", field=name)
        conditions.append(_condition(definition, column, op, raw, name))
    return conditions


def _condition(
    definition: CustomFieldDefinition,
    column: InstrumentedAttribute[dict[str, Any]],
    op: str,
    raw: str,
    name: str,
) -> ColumnElement[bool]:
    kind = definition.field_type
    if op != "eq" and kind not in RANGE_TYPES:
        raise DomainError(f"{name}: ranges work on number, money and date fields", field=name)
    left: ColumnElement[Any]
    right: Any
    if kind in ("number", "money"):
        number = _decimal(raw, name, "a number")
        if abs(number) >= MAX_NUMBER:
            raise DomainError(f"{name} is too large", field=name)
        right = float(number)
        target = column[(definition.key, "amount")] if kind == "money" else column[definition.key]
        left = target.as_float()
    elif kind == "date":
        right = _date(raw, name).isoformat()
        left = column[definition.key].as_string()
    else:
        right = clean_text(raw, name, max_length=MAX_TEXT_VALUE)
        if kind == "choice":
            right = normalise_value(definition, right) or right
        left = column[definition.key].as_string()
    condition: ColumnElement[bool]
    if op == "gte":
        condition = left >= right
    elif op == "lte":
        condition = left <= right
    else:
        condition = left == right
    return condition


# -- CSV cells ---------------------------------------------------------------------------------


def value_from_cell(definition: CustomFieldDefinition, cell: str) -> Any:
    """A CSV cell as a value for `normalise_value` (money is written "12.50 EUR")."""
    if definition.field_type != "money" or not cell.strip():
        return cell
    parts = cell.replace("\u00a0", " ").split()
    if len(parts) == 2:
        first, second = parts
        if CURRENCY_PATTERN.match(first.upper()):
            return {"amount": second, "currency": first}
        return {"amount": first, "currency": second}
    raise DomainError(
        f"custom_fields.{definition.key} must be written like '12.50 EUR'",
        field=f"custom_fields.{definition.key}",
    )


def value_to_cell(definition: CustomFieldDefinition, value: Any) -> str:
    if value is None:
        return ""
    if definition.field_type == "money" and isinstance(value, Mapping):
        return f"{value.get('amount', '')} {value.get('currency', '')}".strip()
    return str(value)
