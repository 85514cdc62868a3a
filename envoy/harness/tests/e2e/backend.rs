//! The demo backend as compose runs it: the `demo-backend` program.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};

use harness::http::{send_raw, Request};

#[test]
fn demo_backend_program_answers_and_reads_chunked_bodies() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_demo-backend"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let r = Request::new("GET", "/v1/inventory?x=1")
        .header("x-tollgate-edge", "dealer")
        .send(addr)
        .unwrap();
    assert_eq!(r.status, 200);
    let j = r.json().unwrap();
    assert_eq!(j["edge"], "dealer");
    assert_eq!(j["path"], "/v1/inventory?x=1");

    let chunked = b"POST /v1/orders HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    let r = send_raw(addr, chunked, false).unwrap();
    assert_eq!(r.json().unwrap()["body_bytes"], 11);

    let _ = child.kill();
    let _ = child.wait();
}
