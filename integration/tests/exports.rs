//! The built modules export exactly what their code implements: the `proxy_on_*` exports of
//! each `dist/<filter>.wasm` are the entries of the filter crate's `EXPORTS` table (what the
//! emulator delivers), no more and no fewer. A phase a filter implements can never be missing
//! from the module, and the host never enters the VM for a phase it does not implement.

use integration::wasm_path;

/// The export names of a wasm module (export section, id 7).
fn wasm_exports(bytes: &[u8]) -> Vec<String> {
    fn leb(b: &[u8], i: &mut usize) -> usize {
        let (mut v, mut shift) = (0usize, 0);
        loop {
            let x = b[*i];
            *i += 1;
            v |= usize::from(x & 0x7f) << shift;
            shift += 7;
            if x < 0x80 {
                return v;
            }
        }
    }
    assert_eq!(&bytes[..4], b"\0asm", "not a wasm module");
    let mut i = 8;
    let mut names = Vec::new();
    while i < bytes.len() {
        let id = bytes[i];
        i += 1;
        let size = leb(bytes, &mut i);
        let end = i + size;
        if id == 7 {
            let mut j = i;
            for _ in 0..leb(bytes, &mut j) {
                let len = leb(bytes, &mut j);
                names.push(String::from_utf8(bytes[j..j + len].to_vec()).unwrap());
                j += len;
                j += 1; // kind
                leb(bytes, &mut j); // index
            }
        }
        i = end;
    }
    names.sort();
    names
}

/// What a module with `exports` must export on wasm.
fn expected(e: &sdk_ext::exports::Exports) -> Vec<String> {
    let mut names: Vec<&str> = vec![
        "memory",
        "proxy_abi_version_0_2_1",
        "proxy_on_memory_allocate",
    ];
    let table = [
        (e.initialize.is_some(), "_initialize"),
        (e.on_context_create.is_some(), "proxy_on_context_create"),
        (e.on_vm_start.is_some(), "proxy_on_vm_start"),
        (e.on_configure.is_some(), "proxy_on_configure"),
        (e.on_tick.is_some(), "proxy_on_tick"),
        (e.on_queue_ready.is_some(), "proxy_on_queue_ready"),
        (e.on_done.is_some(), "proxy_on_done"),
        (e.on_log.is_some(), "proxy_on_log"),
        (e.on_delete.is_some(), "proxy_on_delete"),
        (e.on_request_headers.is_some(), "proxy_on_request_headers"),
        (e.on_request_body.is_some(), "proxy_on_request_body"),
        (e.on_request_trailers.is_some(), "proxy_on_request_trailers"),
        (e.on_response_headers.is_some(), "proxy_on_response_headers"),
        (e.on_response_body.is_some(), "proxy_on_response_body"),
        (
            e.on_response_trailers.is_some(),
            "proxy_on_response_trailers",
        ),
        (e.on_new_connection.is_some(), "proxy_on_new_connection"),
        (e.on_downstream_data.is_some(), "proxy_on_downstream_data"),
        (e.on_upstream_data.is_some(), "proxy_on_upstream_data"),
        (
            e.on_downstream_connection_close.is_some(),
            "proxy_on_downstream_connection_close",
        ),
        (
            e.on_upstream_connection_close.is_some(),
            "proxy_on_upstream_connection_close",
        ),
        (
            e.on_http_call_response.is_some(),
            "proxy_on_http_call_response",
        ),
        (e.on_grpc_receive.is_some(), "proxy_on_grpc_receive"),
        (e.on_grpc_close.is_some(), "proxy_on_grpc_close"),
    ];
    names.extend(table.iter().filter(|(on, _)| *on).map(|(_, n)| *n));
    let mut names: Vec<String> = names.into_iter().map(String::from).collect();
    names.sort();
    names
}

#[test]
fn each_module_exports_exactly_the_phases_its_code_implements() {
    for (module, exports) in [
        ("header-rules", &header_rules::EXPORTS),
        ("jwt-auth", &jwt_auth::EXPORTS),
        ("template", &template::EXPORTS),
        ("cors", &cors::EXPORTS),
        ("ip-filter", &ip_filter::EXPORTS),
        ("request-block", &request_block::EXPORTS),
        ("rate-limit", &rate_limit::EXPORTS),
    ] {
        let path = wasm_path(module);
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run `make build` first)", path.display()));
        assert_eq!(wasm_exports(&bytes), expected(exports), "{module}");
    }
    // The phases themselves, spelled out once for the shipped filters.
    assert!(header_rules::EXPORTS.on_response_headers.is_some());
    assert!(header_rules::EXPORTS.on_response_body.is_none());
    assert!(jwt_auth::EXPORTS.on_response_headers.is_none());
    assert!(template::EXPORTS.on_request_headers.is_some());
    assert!(template::EXPORTS.on_log.is_none());
}
