//! Safaricom Daraja — M-PESA Express (STK push), Kenya.

pub mod wire;
