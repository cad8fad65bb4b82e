-- grain: one row per SK_ID_CURR with at least one POS or cash loan month
-- description: Monthly snapshots of earlier point-of-sale and cash loans with Home Credit: days past due (SK_DPD; SK_DPD_DEF ignores small debts), completed loans and what is still to pay.
-- POS_MONTHS (-, months) [point-of-sale record]: Months of point-of-sale and cash loan history with us
-- POS_LOANS (?, count) [point-of-sale record]: Number of point-of-sale and cash loans with us
-- POS_DPD_MAX (+, days) [late point-of-sale payments]: Longest delay on a point-of-sale or cash loan
-- POS_DPD_MEAN (+, days) [late point-of-sale payments]: Average delay per month on point-of-sale and cash loans
-- POS_DPD_MONTH_SHARE (+, percent) [late point-of-sale payments]: Share of months with a late payment on point-of-sale and cash loans
-- POS_DPD_DEF_MONTH_SHARE (+, percent) [late point-of-sale payments]: Share of months with a significant late payment on point-of-sale and cash loans
-- POS_DPD_MONTH_SHARE_12M (+, percent) [late point-of-sale payments]: Share of late months on point-of-sale and cash loans over the last year
-- POS_COMPLETED_LOANS (-, count) [point-of-sale record]: Point-of-sale and cash loans you have fully repaid
-- POS_REMAINING_INSTALMENTS (+, count): Repayments still to make on your point-of-sale and cash loans
with

pos as (
    select * from {{ source('raw', 'pos_cash_balance') }}
),

remaining_per_applicant as (
    -- each loan counts once, with what was left to pay in its latest month
    select SK_ID_CURR, sum(remaining) as remaining
    from (
        select SK_ID_CURR, SK_ID_PREV, arg_max(CNT_INSTALMENT_FUTURE, MONTHS_BALANCE) as remaining
        from pos
        group by SK_ID_CURR, SK_ID_PREV
    )
    group by SK_ID_CURR
),

months as (
    select
        SK_ID_CURR,
        count(*) as POS_MONTHS,
        count(distinct SK_ID_PREV) as POS_LOANS,
        max(SK_DPD) as POS_DPD_MAX,
        avg(SK_DPD) as POS_DPD_MEAN,
        avg((SK_DPD > 0)::int) as POS_DPD_MONTH_SHARE,
        avg((SK_DPD_DEF > 0)::int) as POS_DPD_DEF_MONTH_SHARE,
        avg((SK_DPD > 0)::int) filter (where MONTHS_BALANCE >= -12) as POS_DPD_MONTH_SHARE_12M,
        count(distinct SK_ID_PREV) filter (where NAME_CONTRACT_STATUS = 'Completed') as POS_COMPLETED_LOANS
    from pos
    group by SK_ID_CURR
),

final as (
    select months.*, remaining_per_applicant.remaining as POS_REMAINING_INSTALMENTS
    from months
    left join remaining_per_applicant using (SK_ID_CURR)
)

select * from final
