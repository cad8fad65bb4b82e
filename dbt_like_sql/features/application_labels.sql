-- grain: one row per labelled SK_ID_CURR
-- description: The outcome of granted loans (1 = payment difficulties), kept apart from every feature table so it can never leak into a feature. Labels exist only for loans that were granted.
with

train as (
    select SK_ID_CURR, TARGET from {{ source('raw', 'application_train') }}
)

select * from train
