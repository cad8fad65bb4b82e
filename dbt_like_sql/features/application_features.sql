-- grain: one row per SK_ID_CURR (labelled and new applications alike)
-- description: The wide feature table the model reads: the cleaned application plus one block of aggregates per history table. Applicants without a history have zero counts and missing ratios. TARGET is not here (see application_labels).
-- HAS_BUREAU_HISTORY (-, flag) [credits elsewhere]: Other lenders have reported credits of yours
-- HAS_PREVIOUS_APPLICATION (?, flag) [earlier applications]: You have applied to us before
with

applications as (select * from {{ ref('application_clean') }}),
bureau as (select * from {{ ref('bureau_features') }}),
previous as (select * from {{ ref('previous_features') }}),
pos as (select * from {{ ref('pos_cash_features') }}),
instalments as (select * from {{ ref('installments_features') }}),
cards as (select * from {{ ref('credit_card_features') }}),

final as (
    select
        applications.*,
        (bureau.SK_ID_CURR is not null)::int as HAS_BUREAU_HISTORY,
        (previous.SK_ID_CURR is not null)::int as HAS_PREVIOUS_APPLICATION,
        bureau.* exclude (SK_ID_CURR) replace (
            coalesce(BUR_CREDIT_COUNT, 0) as BUR_CREDIT_COUNT,
            coalesce(BUR_ACTIVE_COUNT, 0) as BUR_ACTIVE_COUNT,
            coalesce(BUR_CLOSED_COUNT, 0) as BUR_CLOSED_COUNT,
            coalesce(BUR_BAL_MONTHS, 0) as BUR_BAL_MONTHS
        ),
        previous.* exclude (SK_ID_CURR) replace (
            coalesce(PREV_COUNT, 0) as PREV_COUNT,
            coalesce(PREV_APPROVED_COUNT, 0) as PREV_APPROVED_COUNT,
            coalesce(PREV_REFUSED_COUNT, 0) as PREV_REFUSED_COUNT
        ),
        pos.* exclude (SK_ID_CURR) replace (coalesce(POS_MONTHS, 0) as POS_MONTHS),
        instalments.* exclude (SK_ID_CURR) replace (coalesce(INST_COUNT, 0) as INST_COUNT),
        cards.* exclude (SK_ID_CURR) replace (coalesce(CC_MONTHS, 0) as CC_MONTHS)
    from applications
    left join bureau using (SK_ID_CURR)
    left join previous using (SK_ID_CURR)
    left join pos using (SK_ID_CURR)
    left join instalments using (SK_ID_CURR)
    left join cards using (SK_ID_CURR)
)

select * from final
