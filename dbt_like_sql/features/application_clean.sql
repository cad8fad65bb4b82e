-- grain: one row per SK_ID_CURR (labelled and new applications alike)
-- description: The application as filled in, with Kaggle's sentinels made missing (DAYS_EMPLOYED 365243, XNA codes) and the ratios lenders read first. TARGET is not here: it lives in application_labels so it can never leak into features. Every column is worded here for a client (never with Kaggle's own descriptions), with its risk direction, its unit and, when several columns say one thing, its group: one reason and one bar per group.
-- APP_CREDIT_INCOME_RATIO (+, times) [loan against income]: The loan amount compared with your yearly income
-- APP_ANNUITY_INCOME_RATIO (+, percent) [repayment against income]: The share of your income each repayment takes
-- APP_PAYMENT_RATE (-, percent) [repayment term]: The share of the loan repaid each period, which a shorter term raises
-- APP_GOODS_CREDIT_RATIO (-, percent) [loan against goods price]: The price of the goods compared with the loan amount
-- APP_INCOME_PER_PERSON (-, money) [income]: Your income per member of your household
-- APP_EMPLOYED_AGE_RATIO (-, percent) [employment]: The share of your life spent in your current job
-- APP_AGE_YEARS (-, years) [age]: Your age
-- APP_YEARS_EMPLOYED (-, years) [employment]: Years in your current job
-- APP_NOT_EMPLOYED (?, flag) [employment]: You are retired or not in employment
-- APP_EXT_SOURCE_MEAN (-, score) [external credit scores]: The average of your credit scores from external agencies
-- APP_EXT_SOURCE_MIN (-, score) [external credit scores]: The lowest of your credit scores from external agencies
-- APP_EXT_SOURCE_MAX (-, score) [external credit scores]: The highest of your credit scores from external agencies
-- APP_EXT_SOURCE_PROD (-, score) [external credit scores]: Your credit scores from external agencies taken together
-- APP_EXT_SOURCE_COUNT (-, count) [external credit scores]: How many external agencies have a credit score for you
-- APP_DOCUMENT_COUNT (?, count) [documents]: The number of documents you provided with the application
-- EXT_SOURCE_1 (-, score) [external credit scores]: Your credit score from the first external agency
-- EXT_SOURCE_2 (-, score) [external credit scores]: Your credit score from the second external agency
-- EXT_SOURCE_3 (-, score) [external credit scores]: Your credit score from the third external agency
-- AMT_CREDIT (+, money) [loan amount]: The loan amount you asked for
-- AMT_ANNUITY (+, money) [repayment]: The repayment you would make each period
-- AMT_INCOME_TOTAL (-, money) [income]: Your declared yearly income
-- AMT_GOODS_PRICE (?, money) [loan against goods price]: The price of the goods the loan pays for
-- DAYS_BIRTH (+, duration) [age]: Your age
-- DAYS_EMPLOYED (+, duration) [employment]: Time in your current job
-- DAYS_ID_PUBLISH (+, days_ago) [stability]: When you last changed your identity document
-- DAYS_REGISTRATION (+, days_ago) [stability]: When you last changed your registration
-- DAYS_LAST_PHONE_CHANGE (+, days_ago) [stability]: When you last changed your phone number
-- REGION_RATING_CLIENT (+, rating) [region]: Our rating of the region where you live (1 best, 3 worst)
-- REGION_RATING_CLIENT_W_CITY (+, rating) [region]: Our rating of the region and city where you live (1 best, 3 worst)
-- REGION_POPULATION_RELATIVE (?, none) [region]: How densely populated the region where you live is
-- NAME_EDUCATION_TYPE (?, text): Your level of education
-- NAME_INCOME_TYPE (?, text): The kind of income you receive
-- NAME_CONTRACT_TYPE (?, text): The kind of loan you asked for
-- NAME_HOUSING_TYPE (?, text): Your housing
-- OCCUPATION_TYPE (?, text): Your occupation
-- ORGANIZATION_TYPE (?, text): The kind of organisation you work for
-- OWN_CAR_AGE (?, years) [car]: The age of your car
-- FLAG_OWN_CAR (?, flag) [car]: You own a car
-- FLAG_OWN_REALTY (?, flag): You own your home
-- CNT_CHILDREN (?, count) [household]: Number of children
-- CNT_FAM_MEMBERS (?, count) [household]: Number of people in your household
-- CODE_GENDER (?, text): Gender
-- NAME_FAMILY_STATUS (?, text): Family status
-- FLAG_MOBIL (?, flag) [contact details]: You gave a mobile phone number
-- FLAG_EMP_PHONE (?, flag) [contact details]: You gave your employer's phone number
-- FLAG_WORK_PHONE (?, flag) [contact details]: You gave a work phone number
-- FLAG_CONT_MOBILE (?, flag) [contact details]: We could reach you on your mobile phone
-- FLAG_PHONE (?, flag) [contact details]: You gave a home phone number
-- FLAG_EMAIL (?, flag) [contact details]: You gave an e-mail address
-- REG_REGION_NOT_LIVE_REGION (?, flag) [addresses]: Your registered address is in another region than where you live
-- REG_REGION_NOT_WORK_REGION (?, flag) [addresses]: Your registered address is in another region than where you work
-- LIVE_REGION_NOT_WORK_REGION (?, flag) [addresses]: You live in another region than where you work
-- REG_CITY_NOT_LIVE_CITY (?, flag) [addresses]: Your registered address is in another city than where you live
-- REG_CITY_NOT_WORK_CITY (?, flag) [addresses]: Your registered address is in another city than where you work
-- LIVE_CITY_NOT_WORK_CITY (?, flag) [addresses]: You live in another city than where you work
-- *_AVG (?, none) [building]: What is recorded about the building you live in, such as its size, age and floors
-- *_MEDI (?, none) [building]: What is recorded about the building you live in, such as its size, age and floors
-- *_MODE (?, none) [building]: What is recorded about the building you live in, such as its size, age and floors
-- OBS_30_CNT_SOCIAL_CIRCLE (?, count) [social circle]: People you know with a credit record of their own, as reported
-- OBS_60_CNT_SOCIAL_CIRCLE (?, count) [social circle]: People you know with a credit record of their own, as reported
-- DEF_30_CNT_SOCIAL_CIRCLE (?, count) [social circle]: People you know who were late with a repayment, as reported
-- DEF_60_CNT_SOCIAL_CIRCLE (?, count) [social circle]: People you know who were late with a repayment, as reported
-- FLAG_DOCUMENT_* (?, flag) [documents]: You provided document number {n} with the application
-- AMT_REQ_CREDIT_BUREAU_HOUR (?, count) [credit enquiries]: Enquiries about you at the credit bureau in the hour before applying
-- AMT_REQ_CREDIT_BUREAU_DAY (?, count) [credit enquiries]: Enquiries about you at the credit bureau in the day before applying
-- AMT_REQ_CREDIT_BUREAU_WEEK (?, count) [credit enquiries]: Enquiries about you at the credit bureau in the week before applying
-- AMT_REQ_CREDIT_BUREAU_MON (?, count) [credit enquiries]: Enquiries about you at the credit bureau in the month before applying
-- AMT_REQ_CREDIT_BUREAU_QRT (?, count) [credit enquiries]: Enquiries about you at the credit bureau in the three months before applying
-- AMT_REQ_CREDIT_BUREAU_YEAR (?, count) [credit enquiries]: Enquiries about you at the credit bureau in the year before applying
-- WEEKDAY_APPR_PROCESS_START (x): The day of the week the application was started: no reason a lender could give, so never a model input
-- HOUR_APPR_PROCESS_START (x): The hour the application was started: no reason a lender could give, so never a model input
-- NAME_TYPE_SUITE (x): Who came with the client to apply: no reason a lender could give, so never a model input
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
