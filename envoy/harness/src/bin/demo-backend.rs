//! The demo backend as a program of its own (docker compose runs it this way):
//! `demo-backend [--listen ADDR]`, default `127.0.0.1:8080`.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut listen = "127.0.0.1:8080".to_string();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => {
                listen = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--listen needs an address"))?
            }
            "-h" | "--help" => {
                println!("usage: demo-backend [--listen ADDR]   (default 127.0.0.1:8080)");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}; see --help"),
        }
    }
    let backend = harness::backend::Backend::start(&listen)?;
    println!("demo backend listening on http://{}", backend.addr);
    loop {
        std::thread::park();
    }
}
