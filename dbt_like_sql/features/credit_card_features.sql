-- grain: one row per SK_ID_CURR with at least one month of Home Credit card history
-- description: Monthly snapshots of earlier Home Credit cards: how much of the limit was used, drawings, payments against the minimum, and days past due. A zero limit gives no utilisation (missing), not a division by zero.
-- CC_MONTHS (-, months) [card record]: Months of credit-card history with us
-- CC_CARDS (?, count) [card record]: Number of credit cards with us
-- CC_UTILISATION_MEAN (+, percent) [card use]: Share of your card limit you use, on average
-- CC_UTILISATION_MAX (+, percent) [card use]: Highest share of your card limit you used
-- CC_UTILISATION_MEAN_12M (+, percent) [card use]: Share of your card limit used over the last year
-- CC_BALANCE_MEAN (+, money) [card use]: Average balance on your credit card with us
-- CC_LIMIT_MAX (?, money) [card use]: Highest limit on your credit card with us
-- CC_DRAWINGS_MEAN (+, money) [card drawings]: Average amount drawn on your card each month
-- CC_ATM_DRAWINGS_MEAN (+, money) [card drawings]: Average cash withdrawn from cash machines with your card each month
-- CC_PAYMENT_MIN_RATIO_MEAN (-, times) [card payments]: Card payments compared with the minimum due
-- CC_BELOW_MIN_SHARE (+, percent) [card payments]: Share of months you paid less than the minimum on your card
-- CC_DPD_MAX (+, days) [late card payments]: Longest delay on your credit card with us
-- CC_DPD_MONTH_SHARE (+, percent) [late card payments]: Share of months with a late card payment
-- CC_DPD_MONTH_SHARE_12M (+, percent) [late card payments]: Share of months with a late card payment over the last year
with

cards as (
    select
        *,
        AMT_BALANCE / nullif(AMT_CREDIT_LIMIT_ACTUAL, 0) as utilisation,
        AMT_PAYMENT_CURRENT / nullif(AMT_INST_MIN_REGULARITY, 0) as payment_min_ratio,
        case when AMT_INST_MIN_REGULARITY > 0 then (coalesce(AMT_PAYMENT_CURRENT, 0) < AMT_INST_MIN_REGULARITY)::int end as below_min
    from {{ source('raw', 'credit_card_balance') }}
),

final as (
    select
        SK_ID_CURR,
        count(*) as CC_MONTHS,
        count(distinct SK_ID_PREV) as CC_CARDS,
        avg(utilisation) as CC_UTILISATION_MEAN,
        max(utilisation) as CC_UTILISATION_MAX,
        avg(utilisation) filter (where MONTHS_BALANCE >= -12) as CC_UTILISATION_MEAN_12M,
        avg(AMT_BALANCE) as CC_BALANCE_MEAN,
        max(AMT_CREDIT_LIMIT_ACTUAL) as CC_LIMIT_MAX,
        avg(AMT_DRAWINGS_CURRENT) as CC_DRAWINGS_MEAN,
        avg(AMT_DRAWINGS_ATM_CURRENT) as CC_ATM_DRAWINGS_MEAN,
        avg(payment_min_ratio) as CC_PAYMENT_MIN_RATIO_MEAN,
        avg(below_min) as CC_BELOW_MIN_SHARE,
        max(SK_DPD) as CC_DPD_MAX,
        avg((SK_DPD > 0)::int) as CC_DPD_MONTH_SHARE,
        avg((SK_DPD > 0)::int) filter (where MONTHS_BALANCE >= -12) as CC_DPD_MONTH_SHARE_12M
    from cards
    group by SK_ID_CURR
)

select * from final
