//! Accounts and registration data: the personal ID number and its consistency checks.
pub mod national_id;
