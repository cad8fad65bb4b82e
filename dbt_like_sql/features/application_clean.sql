-- grain: one row per SK_ID_CURR (labelled and new applications alike)
-- description: The application as filled in, with Kaggle's sentinels made missing (DAYS_EMPLOYED 365243, XNA codes) and the ratios lenders read first. TARGET is not here: it lives in application_labels so it can never leak into features.
-- APP_CREDIT_INCOME_RATIO (+): The loan amount is large compared with your income
-- APP_ANNUITY_INCOME_RATIO (+): The monthly repayment takes a large part of your income
-- APP_PAYMENT_RATE (-): Share of the loan repaid each period (a short repayment term)
-- APP_GOODS_CREDIT_RATIO (-): Price of the goods compared with the loan amount
-- APP_INCOME_PER_PERSON (-): Income per member of your household
-- APP_EMPLOYED_AGE_RATIO (-): Share of your adult life spent in your current job
-- APP_AGE_YEARS (-): Your age
-- APP_YEARS_EMPLOYED (-): Years in your current job
-- APP_NOT_EMPLOYED (?): You are retired or not in employment
-- APP_EXT_SOURCE_MEAN (-): Average of your external credit scores
-- APP_EXT_SOURCE_MIN (-): Lowest of your external credit scores
-- APP_EXT_SOURCE_MAX (-): Highest of your external credit scores
-- APP_EXT_SOURCE_PROD (-): Product of your external credit scores
-- APP_EXT_SOURCE_COUNT (-): How many external credit scores are known about you
-- APP_DOCUMENT_COUNT (?): Number of documents you provided with the application
-- EXT_SOURCE_1 (-): Your first external credit score
-- EXT_SOURCE_2 (-): Your second external credit score
-- EXT_SOURCE_3 (-): Your third external credit score
-- AMT_CREDIT (?): The loan amount you asked for
-- AMT_ANNUITY (+): The repayment you would make each period
-- AMT_INCOME_TOTAL (-): Your declared income
-- AMT_GOODS_PRICE (?): The price of the goods the loan pays for
-- DAYS_BIRTH (+): Your age (fewer days lived gives a higher value)
-- DAYS_EMPLOYED (+): Time in your current job (a shorter time gives a higher value)
-- DAYS_ID_PUBLISH (+): How recently you changed your identity document
-- DAYS_REGISTRATION (+): How recently you changed your registration
-- DAYS_LAST_PHONE_CHANGE (+): How recently you changed your phone number
-- REGION_RATING_CLIENT (+): The rating of the region where you live
-- REGION_RATING_CLIENT_W_CITY (+): The rating of the region and city where you live
-- NAME_EDUCATION_TYPE (?): Your level of education
-- NAME_INCOME_TYPE (?): The kind of income you receive
-- NAME_CONTRACT_TYPE (?): Whether you asked for a cash loan or a revolving credit
-- OCCUPATION_TYPE (?): Your occupation
-- ORGANIZATION_TYPE (?): The kind of organisation you work for
-- OWN_CAR_AGE (?): The age of your car
-- FLAG_OWN_CAR (?): Whether you own a car
-- CNT_CHILDREN (?): Number of children
-- CNT_FAM_MEMBERS (?): Number of people in your household
with

train as (
    select * exclude (TARGET) from {{ source('raw', 'application_train') }}
),

test as (
    select * from {{ source('raw', 'application_test') }}
),

applications as (
    select * from train
    union all by name
    select * from test
),

final as (
    select
        * replace (
            nullif(DAYS_EMPLOYED, 365243) as DAYS_EMPLOYED,
            nullif(CODE_GENDER, 'XNA') as CODE_GENDER,
            nullif(ORGANIZATION_TYPE, 'XNA') as ORGANIZATION_TYPE
        ),
        AMT_CREDIT / nullif(AMT_INCOME_TOTAL, 0) as APP_CREDIT_INCOME_RATIO,
        AMT_ANNUITY / nullif(AMT_INCOME_TOTAL, 0) as APP_ANNUITY_INCOME_RATIO,
        AMT_ANNUITY / nullif(AMT_CREDIT, 0) as APP_PAYMENT_RATE,
        AMT_GOODS_PRICE / nullif(AMT_CREDIT, 0) as APP_GOODS_CREDIT_RATIO,
        AMT_INCOME_TOTAL / nullif(CNT_FAM_MEMBERS, 0) as APP_INCOME_PER_PERSON,
        nullif(DAYS_EMPLOYED, 365243) / nullif(DAYS_BIRTH, 0) as APP_EMPLOYED_AGE_RATIO,
        -DAYS_BIRTH / 365.25 as APP_AGE_YEARS,
        -nullif(DAYS_EMPLOYED, 365243) / 365.25 as APP_YEARS_EMPLOYED,
        (DAYS_EMPLOYED = 365243)::int as APP_NOT_EMPLOYED,
        list_avg([EXT_SOURCE_1, EXT_SOURCE_2, EXT_SOURCE_3]) as APP_EXT_SOURCE_MEAN,
        list_min([EXT_SOURCE_1, EXT_SOURCE_2, EXT_SOURCE_3]) as APP_EXT_SOURCE_MIN,
        list_max([EXT_SOURCE_1, EXT_SOURCE_2, EXT_SOURCE_3]) as APP_EXT_SOURCE_MAX,
        EXT_SOURCE_1 * EXT_SOURCE_2 * EXT_SOURCE_3 as APP_EXT_SOURCE_PROD,
        list_count([EXT_SOURCE_1, EXT_SOURCE_2, EXT_SOURCE_3]) as APP_EXT_SOURCE_COUNT,
        -- a sum of BIGINT is HUGEINT in DuckDB, which pandas and Arrow read as Python objects
        list_sum([FLAG_DOCUMENT_2, FLAG_DOCUMENT_3, FLAG_DOCUMENT_4, FLAG_DOCUMENT_5, FLAG_DOCUMENT_6,
                  FLAG_DOCUMENT_7, FLAG_DOCUMENT_8, FLAG_DOCUMENT_9, FLAG_DOCUMENT_10, FLAG_DOCUMENT_11,
                  FLAG_DOCUMENT_12, FLAG_DOCUMENT_13, FLAG_DOCUMENT_14, FLAG_DOCUMENT_15, FLAG_DOCUMENT_16,
                  FLAG_DOCUMENT_17, FLAG_DOCUMENT_18, FLAG_DOCUMENT_19, FLAG_DOCUMENT_20, FLAG_DOCUMENT_21])::integer as APP_DOCUMENT_COUNT
    from applications
)

select * from final
