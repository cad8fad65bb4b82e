-- grain: one row per SK_ID_CURR with at least one instalment on an earlier Home Credit loan
-- description: Instalments due on earlier Home Credit loans and how they were paid. An instalment paid in several parts is first summed (one row per loan, version and number); days past due and days early are floored at 0; an instalment never paid counts as unpaid and has no payment delay.
-- INST_COUNT (-, count): Number of instalments due on earlier loans with us
-- INST_PAID_RATIO_MEAN (-, percent) [unpaid instalments]: Share of each instalment you paid, on average
-- INST_DPD_MAX (+, days) [late instalments]: Longest delay on an instalment of an earlier loan with us
-- INST_DPD_MEAN (+, days) [late instalments]: Average delay on instalments of earlier loans with us
-- INST_DAYS_EARLY_MEAN (-, days) [late instalments]: How early, on average, you paid instalments
-- INST_LATE_SHARE (+, percent) [late instalments]: Share of instalments paid late on earlier loans with us
-- INST_UNDERPAID_SHARE (+, percent) [unpaid instalments]: Share of instalments not paid in full
-- INST_UNDERPAID_SUM (+, money) [unpaid instalments]: Total amount left unpaid on instalments
-- INST_LATE_SHARE_LAST10 (+, percent) [late instalments]: Share of your last ten instalments paid late
-- INST_DPD_MEAN_LAST10 (+, days) [late instalments]: Average delay on your last ten instalments
with

payments as (
    select * from {{ source('raw', 'installments_payments') }}
),

instalments as (
    select
        SK_ID_CURR,
        SK_ID_PREV,
        NUM_INSTALMENT_VERSION,
        NUM_INSTALMENT_NUMBER,
        max(DAYS_INSTALMENT) as due_day,
        max(AMT_INSTALMENT) as amount_due,
        coalesce(sum(AMT_PAYMENT), 0) as amount_paid,
        max(DAYS_ENTRY_PAYMENT) as last_payment_day
    from payments
    group by all
),

scored as (
    select
        *,
        amount_paid / nullif(amount_due, 0) as paid_ratio,
        -- greatest() skips NULLs: guard so an instalment never paid has no delay rather than 0
        case when last_payment_day is not null then greatest(last_payment_day - due_day, 0) end as days_past_due,
        case when last_payment_day is not null then greatest(due_day - last_payment_day, 0) end as days_early,
        greatest(amount_due - amount_paid, 0) as underpaid,
        row_number() over (partition by SK_ID_CURR order by due_day desc, SK_ID_PREV, NUM_INSTALMENT_NUMBER) as recency
    from instalments
),

final as (
    select
        SK_ID_CURR,
        count(*) as INST_COUNT,
        avg(paid_ratio) as INST_PAID_RATIO_MEAN,
        max(days_past_due) as INST_DPD_MAX,
        avg(days_past_due) as INST_DPD_MEAN,
        avg(days_early) as INST_DAYS_EARLY_MEAN,
        avg((days_past_due > 0)::int) as INST_LATE_SHARE,
        avg((underpaid > 0)::int) as INST_UNDERPAID_SHARE,
        sum(underpaid) as INST_UNDERPAID_SUM,
        avg((days_past_due > 0)::int) filter (where recency <= 10) as INST_LATE_SHARE_LAST10,
        avg(days_past_due) filter (where recency <= 10) as INST_DPD_MEAN_LAST10
    from scored
    group by SK_ID_CURR
)

select * from final
