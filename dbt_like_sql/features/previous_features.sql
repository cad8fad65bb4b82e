-- grain: one row per SK_ID_CURR with at least one previous Home Credit application
-- description: Earlier applications to Home Credit, split by decision. 365243 in the DAYS_* columns means "no date" and is made missing; a DAYS_LAST_DUE of 365243 on an approved loan means it is still running.
-- PREV_COUNT (?, count) [earlier applications]: Number of earlier applications to us
-- PREV_APPROVED_COUNT (-, count) [earlier applications]: Number of earlier applications to us that were approved
-- PREV_REFUSED_COUNT (+, count) [earlier refusals]: Number of earlier applications to us that were refused
-- PREV_REFUSED_SHARE (+, percent) [earlier refusals]: Share of your earlier applications to us that were refused
-- PREV_REFUSED_LAST_YEAR (+, count) [earlier refusals]: Applications refused by us in the last year
-- PREV_RUNNING_COUNT (+, count): Earlier loans with us still being repaid
-- PREV_APP_CREDIT_RATIO_MEAN (-, times) [asked against granted]: Amount asked compared with amount granted on earlier applications
-- PREV_APPROVED_APP_CREDIT_RATIO_MEAN (-, times) [asked against granted]: Amount asked compared with amount granted on approved applications
-- PREV_REFUSED_AMT_APPLICATION_MEAN (+, money) [earlier refusals]: Average amount asked on refused applications
-- PREV_DOWN_PAYMENT_RATE_MEAN (-, percent): Average down payment on earlier purchases
-- PREV_DAYS_SINCE_LAST_DECISION (-, days) [earlier applications]: Time since your last application to us
-- PREV_DAYS_SINCE_LAST_REFUSAL (-, days) [earlier refusals]: Time since we last refused you
-- PREV_APPROVED_CREDIT_SUM (?, money): Total amount of your earlier approved loans with us
-- PREV_ANNUITY_MEAN (?, money): Average repayment on earlier loans with us
-- PREV_TERM_MEAN (?, count): Average number of repayments on earlier loans with us
with

previous as (
    select
        * replace (
            nullif(DAYS_FIRST_DRAWING, 365243) as DAYS_FIRST_DRAWING,
            nullif(DAYS_FIRST_DUE, 365243) as DAYS_FIRST_DUE,
            nullif(DAYS_LAST_DUE_1ST_VERSION, 365243) as DAYS_LAST_DUE_1ST_VERSION,
            nullif(DAYS_LAST_DUE, 365243) as DAYS_LAST_DUE,
            nullif(DAYS_TERMINATION, 365243) as DAYS_TERMINATION
        ),
        NAME_CONTRACT_STATUS = 'Approved' as is_approved,
        NAME_CONTRACT_STATUS = 'Refused' as is_refused,
        DAYS_LAST_DUE = 365243 as is_running,
        AMT_APPLICATION / nullif(AMT_CREDIT, 0) as app_credit_ratio
    from {{ source('raw', 'previous_application') }}
),

final as (
    select
        SK_ID_CURR,
        count(*) as PREV_COUNT,
        count(*) filter (where is_approved) as PREV_APPROVED_COUNT,
        count(*) filter (where is_refused) as PREV_REFUSED_COUNT,
        avg(is_refused::int) as PREV_REFUSED_SHARE,
        count(*) filter (where is_refused and DAYS_DECISION >= -365) as PREV_REFUSED_LAST_YEAR,
        count(*) filter (where is_approved and is_running) as PREV_RUNNING_COUNT,
        avg(app_credit_ratio) as PREV_APP_CREDIT_RATIO_MEAN,
        avg(app_credit_ratio) filter (where is_approved) as PREV_APPROVED_APP_CREDIT_RATIO_MEAN,
        avg(AMT_APPLICATION) filter (where is_refused) as PREV_REFUSED_AMT_APPLICATION_MEAN,
        avg(RATE_DOWN_PAYMENT) as PREV_DOWN_PAYMENT_RATE_MEAN,
        -max(DAYS_DECISION) as PREV_DAYS_SINCE_LAST_DECISION,
        -max(DAYS_DECISION) filter (where is_refused) as PREV_DAYS_SINCE_LAST_REFUSAL,
        sum(AMT_CREDIT) filter (where is_approved) as PREV_APPROVED_CREDIT_SUM,
        avg(AMT_ANNUITY) as PREV_ANNUITY_MEAN,
        avg(CNT_PAYMENT) as PREV_TERM_MEAN
    from previous
    group by SK_ID_CURR
)

select * from final
