pub mod daraja;
