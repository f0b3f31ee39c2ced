//! A stand-in for the wasm `proc_macro` crate (tests/macro only, until shim/rust/proc_macro/ lands): token
//! streams are their text, enough for a macro crate that does not use proc-macro2. Its
//! `__cratecage_export!` takes the form shim/macro/PROTOCOL.md gives and makes the exports it names; its
//! request carries text where the protocol carries token trees: `u32 magic, u8 kind, str name, str input,
//! [str attribute arguments]`; its reply is `u32 magic, u8 status 0, str output`.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Default, Debug)]
pub struct TokenStream(String);

#[derive(Debug)]
pub struct LexError;

impl TokenStream {
    pub fn new() -> Self {
        TokenStream(String::new())
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl FromStr for TokenStream {
    type Err = LexError;
    fn from_str(s: &str) -> Result<Self, LexError> {
        Ok(TokenStream(s.to_string()))
    }
}

impl fmt::Display for TokenStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub fn is_available() -> bool {
    true
}

#[doc(hidden)]
pub mod __cratecage {
    pub use super::TokenStream;

    pub fn alloc(len: i32) -> i32 {
        let mut buf = vec![0u8; len as usize];
        let ptr = buf.as_mut_ptr();
        std::mem::forget(buf);
        ptr as usize as i32
    }

    fn leak(bytes: Vec<u8>) -> i64 {
        let len = bytes.len() as i64;
        let ptr = Box::leak(bytes.into_boxed_slice()).as_ptr() as usize as i64;
        (ptr << 32) | len
    }

    pub fn listing(text: &str) -> i64 {
        leak(text.as_bytes().to_vec())
    }

    pub struct Request {
        pub kind: u8,
        pub name: String,
        pub input: TokenStream,
        pub args: TokenStream,
    }

    fn take_str(bytes: &[u8], at: &mut usize) -> String {
        let len = u32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap()) as usize;
        let s = String::from_utf8(bytes[*at + 4..*at + 4 + len].to_vec()).unwrap();
        *at += 4 + len;
        s
    }

    impl Request {
        pub fn take(ptr: i32, len: i32) -> Request {
            let bytes = unsafe { Vec::from_raw_parts(ptr as usize as *mut u8, len as usize, len as usize) };
            let mut at = 5;
            let kind = bytes[4];
            let name = take_str(&bytes, &mut at);
            let input = TokenStream(take_str(&bytes, &mut at));
            let args = TokenStream(if kind == 2 { take_str(&bytes, &mut at) } else { String::new() });
            Request { kind, name, input, args }
        }

        pub fn reply(&self, out: TokenStream) -> i64 {
            let mut bytes = 0x31524343u32.to_le_bytes().to_vec();
            bytes.push(0);
            bytes.extend((out.0.len() as u32).to_le_bytes());
            bytes.extend(out.0.as_bytes());
            leak(bytes)
        }
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cratecage_line {
    (derive $name:ident $func:ident ($($helper:ident),*)) => {
        concat!("derive ", stringify!($name), " ", stringify!($func), " ", $(stringify!($helper), ",",)* "\n")
    };
    ($kind:ident $name:ident $func:ident) => {
        concat!(stringify!($kind), " ", stringify!($name), " ", stringify!($func), "\n")
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cratecage_call {
    (attr $func:ident $req:ident) => { $func($req.args.clone(), $req.input.clone()) };
    ($kind:ident $func:ident $req:ident) => { $func($req.input.clone()) };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __cratecage_export {
    ($($kind:ident $name:ident => $func:ident $(($($helper:ident),*))?),* $(,)?) => {
        const _: () = {
            // A cdylib has no reactor start-up of its own: without an `_initialize` that calls the
            // constructors, wasm-ld wraps every export to run them (the facade's among them) at each call.
            unsafe extern "C" {
                fn __wasm_call_ctors();
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn _initialize() { unsafe { __wasm_call_ctors() } }
            #[unsafe(no_mangle)]
            pub extern "C" fn cratecage_macro_abi() -> i32 { 1 }
            #[unsafe(no_mangle)]
            pub extern "C" fn cratecage_alloc(len: i32) -> i32 { ::proc_macro::__cratecage::alloc(len) }
            #[unsafe(no_mangle)]
            pub extern "C" fn cratecage_macros() -> i64 {
                ::proc_macro::__cratecage::listing(concat!($($crate::__cratecage_line!($kind $name $func $(($($helper),*))?)),*))
            }
            #[unsafe(no_mangle)]
            pub extern "C" fn cratecage_expand(ptr: i32, len: i32) -> i64 {
                let req = ::proc_macro::__cratecage::Request::take(ptr, len);
                $(if req.name == stringify!($name) {
                    return req.reply($crate::__cratecage_call!($kind $func req));
                })*
                panic!("no macro {}", req.name)
            }
        };
    };
}
