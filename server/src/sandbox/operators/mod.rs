//! One file per sandbox operator: its routes, wire types, codes, words and callback
//! body ([`super::SandboxOperator`]); everything else is the framework's.

pub mod airtel;
pub mod daraja;
pub mod mtn;
pub mod tigo;
pub mod vodacom;
