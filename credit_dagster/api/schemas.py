"""Request and response bodies of the scoring API, generated from the source contracts.

Each Kaggle column becomes a typed, optional field (the keys are required) with the value sets
and plausible ranges of `sources.SOURCE_TABLES`, so the API accepts exactly what the nightly
ingestion accepts and its OpenAPI document says so. Unknown fields are refused by name: a typo
in a column name must not silently score the application as if the value were missing.
"""


from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from credit_dagster.core.sources import SENTINEL_DAYS, SOURCE_TABLES
from credit_dagster.decision import ondemand
from credit_dagster.review import cases as review

INT64 = (-(2**63), 2**63 - 1)
MAX_INT = 10**9  # counts, days, months
MAX_AMOUNT = 1e12  # amounts and ratios
MAX_TEXT = 200
MAX_HISTORY_ROWS = 5_000  # per table and application: far above any real applicant's history


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _column_type(table: str, column: str, dtype: str) -> Any:
    spec = SOURCE_TABLES[table]
    if column in spec.value_sets and dtype == "VARCHAR":
        return Literal[tuple(spec.value_sets[column])]
    if dtype == "VARCHAR":
        return Annotated[str, Field(max_length=MAX_TEXT)]
    low, high = spec.ranges.get(column, (None, None))
    # beyond the contract's ranges, bounds no real value reaches and the SQL's arithmetic survives
    # (found by the property-based test: a flag of 2**31 overflowed the document count)
    if column.startswith("FLAG_") and dtype == "BIGINT":
        low, high = 0, 1
    elif column.startswith("SK_ID"):
        low, high = 0, 2**53
    limit = MAX_INT if dtype == "BIGINT" else MAX_AMOUNT
    low, high = -limit if low is None else low, limit if high is None else high
    number = int if dtype == "BIGINT" else float
    typed = Annotated[number, Field(ge=low, le=high)]
    # Kaggle's "no date": accepted where the column may hold it, as in the nightly files
    return typed | Literal[SENTINEL_DAYS] if column.startswith("DAYS_") and column in spec.ranges else typed


def row_model(table: str) -> type[BaseModel]:
    """A pydantic model of one row of `table`: the key and not-null columns required, the rest optional."""
    spec = SOURCE_TABLES[table]
    required = {spec.key, *spec.not_null} - {None}
    fields = {}
    for column, dtype in spec.columns.items():
        kind = _column_type(table, column, dtype)
        fields[column] = (kind, ...) if column in required else (kind | None, None)
    return create_model(f"{''.join(p.title() for p in table.split('_'))}Row", __base__=Strict, __doc__=spec.description, **fields)


ApplicationRow = row_model(ondemand.APPLICATION)
HISTORY_ROWS = {table: row_model(table) for table in ondemand.HISTORY_TABLES}
History = create_model(
    "History", __base__=Strict,
    __doc__="Rows of the six history tables for this applicant (any may be left out: no rows of that kind).",
    **{t: (list[m], Field(default_factory=list, max_length=MAX_HISTORY_ROWS)) for t, m in HISTORY_ROWS.items()},
)


class ApplicationRequest(Strict):
    """One application; without history rows, the history the platform holds for SK_ID_CURR is used."""

    application: ApplicationRow
    history: History | None = None

    @model_validator(mode="after")
    def _history_belongs_to_applicant(self) -> "ApplicationRequest":
        if self.history is None:
            return self
        applicant = self.application.SK_ID_CURR
        for table in ondemand.HISTORY_TABLES:
            if table == "bureau_balance":
                continue
            for i, row in enumerate(getattr(self.history, table)):
                if row.SK_ID_CURR != applicant:
                    raise ValueError(f"history.{table}[{i}].SK_ID_CURR is {row.SK_ID_CURR}, not the application's {applicant}")
        bureau = {row.SK_ID_BUREAU for row in self.history.bureau}
        for i, row in enumerate(self.history.bureau_balance):
            if row.SK_ID_BUREAU not in bureau:
                raise ValueError(f"history.bureau_balance[{i}].SK_ID_BUREAU {row.SK_ID_BUREAU} is not in history.bureau")
        for table, key in (("bureau", "SK_ID_BUREAU"), ("previous_application", "SK_ID_PREV")):
            keys = [getattr(row, key) for row in getattr(self.history, table)]
            if len(keys) != len(set(keys)):
                raise ValueError(f"history.{table} has a duplicate {key}")
        return self


UnknownCategory = Literal["reject", "as_missing"]
UNKNOWN_CATEGORY_HELP = ("a category value the model never saw in training: `reject` (422, the default) or "
                         "`as_missing` (scored as a missing value, as the nightly run does, and said in `warnings`)")


class ScoreRequest(ApplicationRequest):
    on_unknown_category: UnknownCategory = Field("reject", description=UNKNOWN_CATEGORY_HELP)


def batch_request(max_batch: int) -> type[BaseModel]:
    """The batch body, its size bounded by configuration (CREDIT_API_MAX_BATCH)."""

    class BatchRequest(Strict):
        applications: list[ApplicationRequest] = Field(min_length=1, max_length=max_batch)
        on_unknown_category: UnknownCategory = Field("reject", description=UNKNOWN_CATEGORY_HELP)

        @model_validator(mode="after")
        def _unique_applicants(self) -> "BatchRequest":
            ids = [a.application.SK_ID_CURR for a in self.applications]
            duplicates = sorted({i for i in ids if ids.count(i) > 1})
            if duplicates:
                raise ValueError(f"SK_ID_CURR appears more than once in the batch: {duplicates[:10]}")
            return self

    return BatchRequest


class Decision(BaseModel):
    """A decision as the nightly run stores it."""

    SK_ID_CURR: int
    probability_of_default: float = Field(description="calibrated probability of payment difficulties")
    points: int = Field(description="scorecard points: more points, lower risk")
    grade: str = Field(description="A (lowest risk) to E")
    decision: Literal["granted", "refused", "refer to an advisor"]
    reasons: list[str] = Field(description="up to four reasons that raised the risk most, in client wording")
    reason_features: list[str]
    history_note: str | None = Field(None, description="a history the client does not have yet and whose absence raised the risk, "
                                                       "stated as a fact (never a reason)")
    counterfactual: str | None = Field(description="for a refusal or referral: the smallest change of amount or term that grants it")
    model_version: str
    threshold: float
    refer_low: float
    refer_high: float
    calibration: str
    features_fingerprint: str
    scored_at: datetime
    refer_everything: bool = Field(description="a supervisor has switched 'refer everything' on: every new decision, nightly "
                                               "or on demand, is referred to an advisor until it is switched off")


class ReviewState(BaseModel):
    """Where a person's review of the application stands."""

    SK_ID_CURR: int
    final_decision: Literal["granted", "refused", "refer to an advisor"] = Field(
        description="the decision that stands: a person's once decided (and approved, for an override), else the model's")
    decided_by: Literal["model", "advisor", "supervisor"]
    review_status: Literal["open", "waiting for approval", "decided", "decided by the model"]
    review_reason_codes: list[str] = Field(description="a person's reason codes (README: Human review)")
    decided_at: datetime | None = Field(description="when a person decided; None while the model's decision stands")
    contested: bool = Field(description="the client asked for a human review")
    decision_sentence: str = Field(description="the decision that stands, who took it and when, and what is pending, in the "
                                               "words the dashboard and the letters use")


class StoredDecision(Decision, ReviewState):
    night: str = Field(description="the nightly partition (YYYY-MM-DD) that scored it")


class ReplayedFigure(BaseModel):
    field: str = Field(description="a figure of the decision: probability_of_default, raw_score, points, grade, decision, "
                       "reason_1..4, reason_features, history_note, features_fingerprint, counterfactual")
    stored: str | float | int | None = Field(description="as the audit record has it")
    replayed: str | float | int | None = Field(description="as the same model version makes it again from the night's features")
    same: bool = Field(description="equal (probabilities and raw scores within 1e-12)")


class DecisionReplay(BaseModel):
    SK_ID_CURR: int
    night: str = Field(description="the night (YYYY-MM-DD) whose decision was replayed")
    model_version: str = Field(description="the registered model version the record names, which made it again")
    scored_at: datetime
    run_id: str = Field(description="the Dagster run that made the decision")
    same: bool = Field(description="every figure, reason and the counterfactual replayed exactly")
    compared: list[ReplayedFigure]


class ContestRequest(Strict):
    """A client asks for a person to review the decision (Consumer Credit Directive 2023/2225 Art. 18)."""

    channel: Literal[*review.CHANNELS]
    received_on: date = Field(description="when the client asked (the case waits from then): not after today, at most a year back")
    client_words: str = Field("", max_length=review.MAX_NOTE, description="the client's own words, kept as text and never interpreted")

    @field_validator("received_on")
    @classmethod
    def _asked_on_a_real_day(cls, value: date) -> date:
        try:
            review.check_received_on(value, datetime.now(UTC).date())
        except review.ReviewError as wrong:
            raise ValueError(str(wrong)) from None
        return value


class OnDemandDecision(Decision):
    decision_id: str = Field(description="identifies this decision in the audit trail")
    history_source: Literal["submitted", "stored", "none"] = Field(
        description="where the history features came from: the request, the history the platform holds, or none")
    warnings: list[str] = Field(default_factory=list)


class Problem(BaseModel):
    field: str = Field(description="the application's field")
    msg: str = Field(description="the rule it breaks, or what it lacks")
    type: Literal["missing", "implausible", "unknown_category"]


class Refused(BaseModel):
    index: int = Field(description="its place in the request's `applications`")
    SK_ID_CURR: int
    problems: list[Problem]


class BatchResponse(BaseModel):
    decisions: list[OnDemandDecision] = Field(description="the applications scored, in the request's order")
    refused: list[Refused] = Field(default_factory=list, description="the applications not scored, each with what to correct")
    scored_count: int
    refused_count: int


class ModelSummary(BaseModel):
    model_version: str
    created_at: str
    synthetic: bool = Field(description="trained on SYNTHETIC data: not for decisions about real clients")
    threshold: float
    refer_low: float
    refer_high: float
    calibration: str
    cv_roc_auc: float
    cv_roc_auc_interval: list[float] | None
    brier: float | None
    features: int
    model_card: str = Field(description="path of the HTML model card on this API")


class Readiness(BaseModel):
    ready: bool
    night: str | None = None
    model_version: str | None = None
    snapshot: str
    problems: list[str] = Field(default_factory=list)
