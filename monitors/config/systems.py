"""The outside systems Driftwatch reads: Shopify, a REST API, or CSV files dropped in a
directory. ``System`` is their union, told apart by ``kind``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StrictBool, model_validator

from monitors.config.types import (
    ApiPath,
    ApiVersion,
    Delimiter,
    Directory,
    DottedPath,
    Encoding,
    EnvName,
    Glob,
    HeaderName,
    Hostname,
    Name,
    NonEmptyStr,
    NonNegativeInt,
    PositiveInt,
    SkuPattern,
    SlackChannel,
    State,
    Url,
    WritePath,
)

Role = Literal["storefront", "warehouse", "erp", "other"]
Kind = Literal["shopify", "rest", "csv"]
#: Which SKUs a store carries: every SKU the truth has, or those it has ever listed.
Carries = Literal["all", "listed"]

#: The states compared by default: what is physically there and good. Shopify's
#: ``available`` excludes units committed to unfulfilled orders, which a WMS still
#: counts as pickable, so available + committed is comparable to WMS pickable.
DEFAULT_COMPARE_STATES: tuple[str, ...] = ("available", "committed")


class StrictModel(BaseModel):
    """A configuration table: immutable, and an unknown key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def default_compare_states(kind: object, quantities: object) -> tuple[str, ...] | None:
    """``compare_states`` when the file does not say: available + committed for
    Shopify; for rest/csv, those of the two that ``quantities`` maps (None if neither)."""
    if kind == "shopify":
        return DEFAULT_COMPARE_STATES
    if not isinstance(quantities, Mapping):
        return None
    mapped = tuple(s for s in DEFAULT_COMPARE_STATES if s in quantities)
    return mapped or None


def _fill_compare_states(data: Any, kind: str, table: str) -> Any:
    if isinstance(data, Mapping) and "compare_states" not in data:
        section = data.get(table)
        quantities = section.get("quantities") if isinstance(section, Mapping) else None
        default = default_compare_states(kind, quantities)
        if default is not None:
            return {**data, "compare_states": default}
    return data


class _SystemBase(StrictModel):
    name: Name
    role: Role = "other"
    sla_seconds: PositiveInt = 900
    compare_states: Annotated[tuple[State, ...], Field(min_length=1)] = ()
    writable: StrictBool = False
    write_state: State = "available"


class ShopifySystem(_SystemBase):
    """A Shopify store read through the Admin GraphQL API."""

    kind: Literal["shopify"]
    role: Role = "storefront"
    write_state: Literal["available", "on_hand"] = "available"
    shop_url: Url
    api_version: ApiVersion = "2026-07"
    token_env: EnvName = "SHOPIFY_ACCESS_TOKEN"
    webhook_secret_env: EnvName | None = None
    #: The public address of ``driftwatch serve``'s ``/webhooks/shopify``, which
    #: ``driftwatch webhooks`` checks (and with --create subscribes) in the shop.
    webhook_url: Url | None = None
    #: The shop's ``*.myshopify.com`` domain, as Shopify names it in each webhook's
    #: ``X-Shopify-Shop-Domain``; deliveries for any other shop are refused. Default:
    #: the host of ``shop_url``.
    shop_domain: Hostname | None = None
    bulk_threshold: PositiveInt = 5000
    page_size: Annotated[int, Field(strict=True, ge=1, le=250)] = 250
    #: Which SKUs this store carries, so a SKU it does not carry is never "missing"
    #: here: ``"all"`` (every SKU the source of truth has) or ``"listed"`` (the SKUs it
    #: has ever listed at a location, as the ledger recorded them). None: ``"all"`` with
    #: one Shopify store, ``"listed"`` with several (see :meth:`Config.carries`).
    carries: Carries | None = None
    #: Only SKUs matching one of these glob patterns are carried (empty: any SKU).
    carries_skus: tuple[SkuPattern, ...] = ()
    #: SKUs matching one of these glob patterns are never carried here.
    excludes_skus: tuple[SkuPattern, ...] = ()
    #: This store's own source-of-truth order (its own warehouse first): the truth its
    #: counts are judged against. Default: the top-level ``source_of_truth``.
    source_of_truth: tuple[Name, ...] | None = None
    #: The Slack channel for this store's alerts. Default: ``slack.alerts_channel``.
    alerts_channel: SlackChannel | None = None
    #: The channel for this store's reports. Default: this store's ``alerts_channel``
    #: if set, else ``slack.reports_channel``.
    reports_channel: SlackChannel | None = None

    @property
    def webhook_shop_domain(self) -> str:
        """The shop domain webhooks must name: ``shop_domain``, else ``shop_url``'s host."""
        if self.shop_domain is not None:
            return self.shop_domain.lower()
        return (urlsplit(self.shop_url).hostname or "").lower()

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _fill_compare_states(data, "shopify", "")


class NoAuth(StrictModel):
    type: Literal["none"] = "none"


class BearerAuth(StrictModel):
    type: Literal["bearer"]
    token_env: EnvName


class BasicAuth(StrictModel):
    type: Literal["basic"]
    username_env: EnvName
    password_env: EnvName


class HeaderAuth(StrictModel):
    type: Literal["header"]
    header: HeaderName
    value_env: EnvName


RestAuth = Annotated[NoAuth | BearerAuth | BasicAuth | HeaderAuth, Discriminator("type")]
QueryParam = NonEmptyStr


class RestList(StrictModel):
    """How to page through the list of inventory levels."""

    path: ApiPath
    pagination: Literal["page", "offset", "cursor", "link"] = "page"
    page_param: QueryParam = "page"
    first_page: NonNegativeInt = 1
    offset_param: QueryParam = "offset"
    size_param: QueryParam = "limit"
    cursor_param: QueryParam = "cursor"
    next_cursor_path: DottedPath | None = None
    items_path: DottedPath | None = None
    page_size: PositiveInt = 100


class RestFields(StrictModel):
    """Where each value sits in one item of the list (dotted paths)."""

    sku: DottedPath
    location: DottedPath
    updated_at: DottedPath | None = None
    quantities: Annotated[Mapping[State, DottedPath], Field(min_length=1)]


class RestWrite(StrictModel):
    """How to set one level: ``method path`` with the quantity in the JSON body."""

    method: Literal["POST", "PUT", "PATCH"] = "PUT"
    path: WritePath
    body_quantity_field: DottedPath = "quantity"
    idempotency_header: HeaderName = "Idempotency-Key"


class RestSystem(_SystemBase):
    """A WMS or ERP with a JSON REST API."""

    kind: Literal["rest"]
    base_url: Url
    auth: RestAuth = NoAuth()
    list: RestList
    fields: RestFields
    write: RestWrite | None = None

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _fill_compare_states(data, "rest", "fields")


class CsvColumns(StrictModel):
    """Column names (the files have a header row)."""

    sku: NonEmptyStr
    location: NonEmptyStr
    quantities: Annotated[Mapping[State, NonEmptyStr], Field(min_length=1)]
    observed_at: NonEmptyStr | None = None


class CsvSystem(_SystemBase):
    """CSV files dropped in a directory (read-only)."""

    kind: Literal["csv"]
    sla_seconds: PositiveInt = 90000
    directory: Directory
    pattern: Glob = "*.csv"
    columns: CsvColumns
    delimiter: Delimiter = ","
    encoding: Encoding = "utf-8"
    settle_seconds: NonNegativeInt = 60

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _fill_compare_states(data, "csv", "columns")


System = Annotated[ShopifySystem | RestSystem | CsvSystem, Discriminator("kind")]
