-- grain: one row per SK_ID_CURR with at least one Credit Bureau record
-- description: Credits held at other lenders (bureau) and their monthly status history (bureau_balance). Status 1-5 are 30-day buckets of days past due, C closed, X unknown. Shares are month-weighted; a credit without balance months counts in the credit totals but not in the status shares.
-- BUR_CREDIT_COUNT (?, count) [credits elsewhere]: Number of credits you have had with other lenders
-- BUR_ACTIVE_COUNT (+, count) [credits elsewhere]: Credits you have open with other lenders
-- BUR_CLOSED_COUNT (-, count) [credits elsewhere]: Credits you have repaid and closed with other lenders
-- BUR_ACTIVE_SHARE (+, percent) [credits elsewhere]: Share of your credits with other lenders that are still open
-- BUR_BAD_DEBT_COUNT (+, count): Credits with other lenders written off as bad debt or sold
-- BUR_DAYS_SINCE_LAST_CREDIT (-, days) [credits elsewhere]: Time since you last took a credit with another lender
-- BUR_DAYS_SINCE_FIRST_CREDIT (-, days): Length of your credit history with other lenders
-- BUR_CREDIT_SUM (?, money) [debt elsewhere]: Total amount of your credits with other lenders
-- BUR_DEBT_SUM (+, money) [debt elsewhere]: Total debt you still owe to other lenders
-- BUR_ACTIVE_DEBT_SUM (+, money) [debt elsewhere]: Debt still owed on your open credits with other lenders
-- BUR_DEBT_CREDIT_RATIO (+, percent) [debt elsewhere]: Share of your credit with other lenders that is still owed
-- BUR_OVERDUE_SUM (+, money) [overdue elsewhere]: Amount currently overdue with other lenders
-- BUR_OVERDUE_DEBT_RATIO (+, percent) [overdue elsewhere]: Share of what you owe other lenders that is overdue
-- BUR_MAX_DAYS_OVERDUE (+, days) [overdue elsewhere]: Longest current delay on a credit with another lender
-- BUR_OVERDUE_CREDIT_SHARE (+, percent) [overdue elsewhere]: Share of your credits with other lenders that are overdue now
-- BUR_MAX_OVERDUE_AMOUNT (+, money) [overdue elsewhere]: Largest amount ever overdue with another lender
-- BUR_LIMIT_RATIO (?, percent): Credit-card limits compared with your total credit elsewhere
-- BUR_PROLONG_COUNT (+, count): Number of times credits with other lenders were extended
-- BUR_ACTIVE_DAYS_TO_END_MEAN (?, none): Average time left on your open credits with other lenders
-- BUR_BAL_MONTHS (-, months) [repayment record elsewhere]: Months of repayment history known from other lenders
-- BUR_BAL_LATE_SHARE (+, percent) [late payments elsewhere]: Share of months with a late payment on credits with other lenders
-- BUR_BAL_ON_TIME_SHARE (-, percent) [late payments elsewhere]: Share of months paid on time on credits with other lenders
-- BUR_BAL_CLOSED_SHARE (?, percent) [repayment record elsewhere]: Share of months after credits with other lenders were closed
-- BUR_BAL_UNKNOWN_SHARE (?, percent) [repayment record elsewhere]: Share of months with unknown status at other lenders
-- BUR_BAL_WORST_STATUS (+, delay_step) [late payments elsewhere]: Worst delay ever reported by another lender (in 30-day steps)
-- BUR_BAL_LATE_SHARE_12M (+, percent) [late payments elsewhere]: Share of late months with other lenders over the last year
-- BUR_BAL_WORST_STATUS_12M (+, delay_step) [late payments elsewhere]: Worst delay reported by another lender over the last year
with

bureau as (
    select * from {{ source('raw', 'bureau') }}
),

bureau_balance as (
    select * from {{ source('raw', 'bureau_balance') }}
),

months_per_credit as (
    select
        SK_ID_BUREAU,
        count(*) as n_months,
        count(*) filter (where STATUS in ('1', '2', '3', '4', '5')) as n_late,
        count(*) filter (where STATUS = '0') as n_on_time,
        count(*) filter (where STATUS = 'C') as n_closed,
        count(*) filter (where STATUS = 'X') as n_unknown,
        max(case when STATUS in ('1', '2', '3', '4', '5') then STATUS::int else 0 end) as worst_status,
        count(*) filter (where MONTHS_BALANCE >= -12) as n_months_12m,
        count(*) filter (where MONTHS_BALANCE >= -12 and STATUS in ('1', '2', '3', '4', '5')) as n_late_12m,
        max(case when MONTHS_BALANCE >= -12 and STATUS in ('1', '2', '3', '4', '5') then STATUS::int
                 when MONTHS_BALANCE >= -12 then 0 end) as worst_status_12m
    from bureau_balance
    group by SK_ID_BUREAU
),

credits as (
    select
        bureau.*,
        months_per_credit.* exclude (SK_ID_BUREAU),
        CREDIT_ACTIVE = 'Active' as is_active
    from bureau
    left join months_per_credit using (SK_ID_BUREAU)
),

final as (
    select
        SK_ID_CURR,
        count(*) as BUR_CREDIT_COUNT,
        count(*) filter (where is_active) as BUR_ACTIVE_COUNT,
        count(*) filter (where CREDIT_ACTIVE = 'Closed') as BUR_CLOSED_COUNT,
        avg(is_active::int) as BUR_ACTIVE_SHARE,
        count(*) filter (where CREDIT_ACTIVE in ('Bad debt', 'Sold')) as BUR_BAD_DEBT_COUNT,
        -max(DAYS_CREDIT) as BUR_DAYS_SINCE_LAST_CREDIT,
        -min(DAYS_CREDIT) as BUR_DAYS_SINCE_FIRST_CREDIT,
        sum(AMT_CREDIT_SUM) as BUR_CREDIT_SUM,
        sum(AMT_CREDIT_SUM_DEBT) as BUR_DEBT_SUM,
        coalesce(sum(AMT_CREDIT_SUM_DEBT) filter (where is_active), 0) as BUR_ACTIVE_DEBT_SUM,
        sum(AMT_CREDIT_SUM_DEBT) / nullif(sum(AMT_CREDIT_SUM), 0) as BUR_DEBT_CREDIT_RATIO,
        sum(AMT_CREDIT_SUM_OVERDUE) as BUR_OVERDUE_SUM,
        sum(AMT_CREDIT_SUM_OVERDUE) / nullif(sum(AMT_CREDIT_SUM_DEBT), 0) as BUR_OVERDUE_DEBT_RATIO,
        max(CREDIT_DAY_OVERDUE) as BUR_MAX_DAYS_OVERDUE,
        avg((CREDIT_DAY_OVERDUE > 0)::int) as BUR_OVERDUE_CREDIT_SHARE,
        max(AMT_CREDIT_MAX_OVERDUE) as BUR_MAX_OVERDUE_AMOUNT,
        sum(AMT_CREDIT_SUM_LIMIT) / nullif(sum(AMT_CREDIT_SUM), 0) as BUR_LIMIT_RATIO,
        sum(CNT_CREDIT_PROLONG)::bigint as BUR_PROLONG_COUNT,
        -- end dates beyond about 50 years are data errors in Kaggle's bureau, not plans
        avg(DAYS_CREDIT_ENDDATE) filter (where is_active and abs(DAYS_CREDIT_ENDDATE) < 18250) as BUR_ACTIVE_DAYS_TO_END_MEAN,
        coalesce(sum(n_months), 0)::bigint as BUR_BAL_MONTHS,
        sum(n_late) / nullif(sum(n_months), 0) as BUR_BAL_LATE_SHARE,
        sum(n_on_time) / nullif(sum(n_months), 0) as BUR_BAL_ON_TIME_SHARE,
        sum(n_closed) / nullif(sum(n_months), 0) as BUR_BAL_CLOSED_SHARE,
        sum(n_unknown) / nullif(sum(n_months), 0) as BUR_BAL_UNKNOWN_SHARE,
        max(worst_status) as BUR_BAL_WORST_STATUS,
        sum(n_late_12m) / nullif(sum(n_months_12m), 0) as BUR_BAL_LATE_SHARE_12M,
        max(worst_status_12m) as BUR_BAL_WORST_STATUS_12M
    from credits
    group by SK_ID_CURR
)

select * from final
