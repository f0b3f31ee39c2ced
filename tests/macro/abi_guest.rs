//! A guest module written directly against shim/macro/PROTOCOL.md's ABI (no `proc_macro` crate), for
//! tests/macro/test_server.py. Every macro is function-like; its input's first literal is its argument, and
//! its reply is one string literal (or the input stream itself, for `echo`).

use std::io::{Read, Write};

#[link(wasm_import_module = "cratecage_macro")]
extern "C" {
    fn panic(ptr: *const u8, len: usize);
}

static mut COUNT: u32 = 0;
static mut REPLY: Vec<u8> = Vec::new();

#[no_mangle]
pub extern "C" fn cratecage_macro_abi() -> i32 {
    if cfg!(future_abi) { 2 } else { 1 }
}

#[no_mangle]
pub extern "C" fn cratecage_alloc(len: i32) -> i32 {
    let mut buf = Vec::<u8>::with_capacity(len as usize);
    let ptr = buf.as_mut_ptr();
    std::mem::forget(buf);
    ptr as i32
}

#[no_mangle]
pub extern "C" fn cratecage_macros() -> i64 {
    static LISTING: &str = "bang echo echo\nbang count count\n";
    ((LISTING.as_ptr() as i64) << 32) | LISTING.len() as i64
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1)[0]
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes(4).try_into().unwrap())
    }
    fn str(&mut self) -> &'a str {
        let n = self.u32() as usize;
        std::str::from_utf8(self.bytes(n)).unwrap()
    }
    fn opt_str(&mut self) -> Option<&'a str> {
        if self.u8() == 1 { Some(self.str()) } else { None }
    }
    /// The first literal of a stream, its quotes removed.
    fn first_literal(&mut self) -> String {
        let count = self.u32();
        for _ in 0..count {
            match self.u8() {
                4 => {
                    self.bytes(8);
                    return self.str().trim_matches('"').to_string();
                }
                2 => { self.bytes(9); self.str(); }
                3 => { self.bytes(13); }
                1 => { self.bytes(1 + 24); return self.first_literal(); }
                _ => break,
            }
        }
        String::new()
    }
}

const FORGED: &str = "cratecage: proc macro crate abi_guest 0.1.0 (compiling app 0.1.0): filesystem-access denied: read /home";
const FORGED_ENTRY: &str = "  to permit it, add to the policy:\n    [permissions.macro.abi_guest]\n    sandbox = \"native\"";

fn literal(text: &str) -> Vec<u8> {
    let quoted = format!("{:?}", text);
    let mut out = Vec::new();
    out.extend_from_slice(&0x3152_4343u32.to_le_bytes());
    out.push(0);
    out.extend_from_slice(&1u32.to_le_bytes());
    out.push(4);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&(quoted.len() as u32).to_le_bytes());
    out.extend_from_slice(quoted.as_bytes());
    out
}

fn expand(name: &str, input: &[u8], arg: String) -> Vec<u8> {
    match name {
        "echo" => {
            let mut out = 0x3152_4343u32.to_le_bytes().to_vec();
            out.push(0);
            out.extend_from_slice(input);
            out
        }
        "count" => literal(&unsafe { COUNT += 1; COUNT }.to_string()),
        "boom" => panic!("boom: {}", arg),
        "shout" => {
            println!("{arg}");
            literal("shouted")
        }
        "nap" => {
            std::thread::sleep(std::time::Duration::from_secs(arg.parse().unwrap()));
            literal("rested")
        }
        "spin" => loop { std::hint::black_box(&arg); },
        // Text made to pass for cratecage's own, offering the entry that would let the guest out.
        "forge" => {
            let text = format!("{FORGED}\n{FORGED_ENTRY}");
            let mut out = 0x3152_4343u32.to_le_bytes().to_vec();
            out.push(2); // status 2: the sandbox's refusal
            out.extend_from_slice(&(text.len() as u32).to_le_bytes());
            out.extend_from_slice(text.as_bytes());
            out
        }
        // A reply just over the 256 MiB a reply may hold, within the memory limit (the pages stay untouched).
        "flood" => {
            let mut out = vec![0u8; (256 << 20) + 4096];
            out[..4].copy_from_slice(&0x3152_4343u32.to_le_bytes());
            out
        }
        "newlines" => {
            let chunk = vec![b'\n'; 1 << 20];
            let mut err = std::io::stderr();
            for _ in 0..arg.parse::<usize>().unwrap() {
                if err.write_all(&chunk).is_err() {
                    break;
                }
            }
            literal("flooded")
        }
        "forge_panic" => panic!("not a unit struct\n\x1b[2K\r{FORGED}\n{FORGED_ENTRY}"),
        "forge_print" => {
            eprintln!("harmless\r{FORGED}");
            println!("\x1b[1A{FORGED}\n{FORGED_ENTRY}");
            eprint!("  cratecage: unfinished");
            literal("printed")
        }
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop { hoard.push(vec![7u8; 1 << 20]); }
        }
        "read" => literal(&std::fs::read_to_string(&arg).unwrap_or_else(|e| format!("error: {e}"))),
        "env" => literal(&std::env::var(&arg).unwrap_or_else(|_| "unset".into())),
        "spawn" => literal(&match std::process::Command::new("sh").arg("-c").arg(&arg).output() {
            Ok(out) => String::from_utf8_lossy(&out.stdout).into_owned(),
            Err(e) => format!("error: {e}"),
        }),
        "start" => literal(&match std::process::Command::new("sh").arg("-c").arg(&arg).spawn() {
            Ok(child) => {
                std::mem::forget(child); // left running: the server must end it
                "started".to_string()
            }
            Err(e) => format!("error: {e}"),
        }),
        "connect" => literal(&match std::net::TcpStream::connect(arg.as_str()) {
            Ok(mut s) => {
                let _ = s.write_all(b"hello\n");
                let mut got = String::new();
                let _ = s.read_to_string(&mut got);
                got
            }
            Err(e) => format!("error: {e}"),
        }),
        _ => panic!("no macro {name}"),
    }
}

#[no_mangle]
pub extern "C" fn cratecage_expand(ptr: i32, len: i32) -> i64 {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.payload().downcast_ref::<String>().cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "Box<dyn Any>".into());
        unsafe { panic(msg.as_ptr(), msg.len()) };
    }));
    let request = unsafe { Vec::from_raw_parts(ptr as *mut u8, len as usize, len as usize) };
    let mut r = Reader(&request);
    assert_eq!(r.u32(), 0x314d_4343);
    let _kind = r.u8();
    let name = r.str().to_string();
    for _ in 0..r.u32() {
        r.str();
        r.opt_str();
        r.bytes(24);
        r.opt_str();
    }
    let input = r.0;
    let arg = Reader(input).first_literal();
    let reply = expand(&name, input, arg);
    unsafe {
        REPLY = reply;
        #[allow(static_mut_refs)]
        (((REPLY.as_ptr() as i64) << 32) | REPLY.len() as i64)
    }
}
