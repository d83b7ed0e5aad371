//! `#[sdk_ext::filter]`: put it on a filter's `impl HttpFilter for T` or
//! `impl NetworkFilter for T` block. It reads which phase methods the block defines and
//!
//! - sets the trait's `PHASES` to exactly those (the emulator delivers only them), and
//! - on wasm, writes one `proxy_on_*` export per phase, so the module exports what the
//!   code implements and nothing else: the host never enters the VM for a phase the
//!   filter does not have, and a phase the filter has can never be missing.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as Tokens};
use quote::quote;
use syn::{parse_macro_input, Error, ImplItem, ItemImpl};

mod from_json;

/// `#[derive(FromJson)]`: reads the type from `sdk_ext::json::Value` as its `#[serde(...)]`
/// attributes describe it (see `sdk_ext::json::FromJson`).
#[proc_macro_derive(FromJson, attributes(serde, from_json))]
pub fn derive_from_json(item: TokenStream) -> TokenStream {
    let input = parse_macro_input!(item as syn::DeriveInput);
    from_json::expand(&input)
        .unwrap_or_else(Error::into_compile_error)
        .into()
}

/// A phase: method name, `Phases` constant, export name, export signature kind.
struct Phase {
    method: &'static str,
    bit: &'static str,
    export: &'static str,
    dispatch: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    /// `(context, size, end_of_stream) -> action`
    SizeEos,
    /// `(context, count) -> action`
    Count,
    /// `(context)`
    Unit,
    /// `(context) -> action`
    Action,
    /// `(context, peer)`
    Peer,
    /// Delivered through the module's `proxy_on_http_call_response` (written by `main!`).
    Shared,
}

const HTTP: &[Phase] = &[
    Phase {
        method: "on_request_headers",
        bit: "REQUEST_HEADERS",
        export: "proxy_on_request_headers",
        dispatch: "request_headers",
        kind: Kind::SizeEos,
    },
    Phase {
        method: "on_request_body",
        bit: "REQUEST_BODY",
        export: "proxy_on_request_body",
        dispatch: "request_body",
        kind: Kind::SizeEos,
    },
    Phase {
        method: "on_request_trailers",
        bit: "REQUEST_TRAILERS",
        export: "proxy_on_request_trailers",
        dispatch: "request_trailers",
        kind: Kind::Count,
    },
    Phase {
        method: "on_response_headers",
        bit: "RESPONSE_HEADERS",
        export: "proxy_on_response_headers",
        dispatch: "response_headers",
        kind: Kind::SizeEos,
    },
    Phase {
        method: "on_response_body",
        bit: "RESPONSE_BODY",
        export: "proxy_on_response_body",
        dispatch: "response_body",
        kind: Kind::SizeEos,
    },
    Phase {
        method: "on_response_trailers",
        bit: "RESPONSE_TRAILERS",
        export: "proxy_on_response_trailers",
        dispatch: "response_trailers",
        kind: Kind::Count,
    },
    Phase {
        method: "on_log",
        bit: "LOG",
        export: "proxy_on_log",
        dispatch: "log",
        kind: Kind::Unit,
    },
    Phase {
        method: "on_http_call_response",
        bit: "HTTP_CALL_RESPONSE",
        export: "",
        dispatch: "",
        kind: Kind::Shared,
    },
];

const NETWORK: &[Phase] = &[
    Phase {
        method: "on_new_connection",
        bit: "NEW_CONNECTION",
        export: "proxy_on_new_connection",
        dispatch: "new_connection",
        kind: Kind::Action,
    },
    Phase {
        method: "on_downstream_data",
        bit: "DOWNSTREAM_DATA",
        export: "proxy_on_downstream_data",
        dispatch: "downstream_data",
        kind: Kind::SizeEos,
    },
    Phase {
        method: "on_upstream_data",
        bit: "UPSTREAM_DATA",
        export: "proxy_on_upstream_data",
        dispatch: "upstream_data",
        kind: Kind::SizeEos,
    },
    Phase {
        method: "on_downstream_close",
        bit: "DOWNSTREAM_CLOSE",
        export: "proxy_on_downstream_connection_close",
        dispatch: "downstream_close",
        kind: Kind::Peer,
    },
    Phase {
        method: "on_upstream_close",
        bit: "UPSTREAM_CLOSE",
        export: "proxy_on_upstream_connection_close",
        dispatch: "upstream_close",
        kind: Kind::Peer,
    },
    Phase {
        method: "on_http_call_response",
        bit: "HTTP_CALL_RESPONSE",
        export: "",
        dispatch: "",
        kind: Kind::Shared,
    },
];

/// Marks a filter's `impl HttpFilter for T` / `impl NetworkFilter for T` block; see the
/// crate docs.
#[proc_macro_attribute]
pub fn filter(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return Error::new(Span::call_site(), "#[sdk_ext::filter] takes no arguments")
            .to_compile_error()
            .into();
    }
    let mut block = parse_macro_input!(item as ItemImpl);
    match expand(&mut block) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(block: &mut ItemImpl) -> Result<Tokens, Error> {
    let Some((_, trait_path, _)) = &block.trait_ else {
        return Err(Error::new_spanned(
            &block.self_ty,
            "#[sdk_ext::filter] goes on `impl HttpFilter for T` or `impl NetworkFilter for T`",
        ));
    };
    let trait_name = trait_path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default();
    let phases =
        match trait_name.as_str() {
            "HttpFilter" => HTTP,
            "NetworkFilter" => NETWORK,
            _ => return Err(Error::new_spanned(
                trait_path,
                "#[sdk_ext::filter] goes on `impl HttpFilter for T` or `impl NetworkFilter for T`",
            )),
        };
    if !block.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &block.generics,
            "a filter type exported by #[sdk_ext::filter] cannot be generic",
        ));
    }
    let mut bits = Vec::new();
    let mut exports = Vec::new();
    let self_ty = &block.self_ty;
    for item in &block.items {
        match item {
            ImplItem::Const(c) if c.ident == "PHASES" => {
                return Err(Error::new_spanned(
                    &c.ident,
                    "PHASES is written by #[sdk_ext::filter] from the methods of this block",
                ));
            }
            ImplItem::Fn(f) => {
                let name = f.sig.ident.to_string();
                let Some(phase) = phases.iter().find(|p| p.method == name) else {
                    continue;
                };
                let bit = syn::Ident::new(phase.bit, Span::call_site());
                bits.push(quote!(::sdk_ext::exports::Phases::#bit));
                if let Some(export) = export_of(phase, self_ty) {
                    exports.push(export);
                }
            }
            _ => {}
        }
    }
    let bits = if bits.is_empty() {
        quote!(0)
    } else {
        quote!(#(#bits)|*)
    };
    block.items.push(syn::parse_quote! {
        const PHASES: ::sdk_ext::exports::Phases = ::sdk_ext::exports::Phases::__from_bits(#bits);
    });
    Ok(quote! {
        #block
        #[cfg(target_family = "wasm")]
        const _: () = {
            #(#exports)*
        };
    })
}

fn export_of(phase: &Phase, self_ty: &syn::Type) -> Option<Tokens> {
    if matches!(phase.kind, Kind::Shared) {
        return None;
    }
    let export = syn::Ident::new(phase.export, Span::call_site());
    let dispatch = syn::Ident::new(phase.dispatch, Span::call_site());
    let path = quote!(::sdk_ext::exports::#dispatch::<#self_ty>);
    Some(match phase.kind {
        Kind::SizeEos => quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn #export(context: u32, size: usize, end_of_stream: u32) -> u32 {
                #path(context, size, end_of_stream)
            }
        },
        Kind::Count => quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn #export(context: u32, count: usize) -> u32 {
                #path(context, count)
            }
        },
        Kind::Unit => quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn #export(context: u32) {
                #path(context)
            }
        },
        Kind::Action => quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn #export(context: u32) -> u32 {
                #path(context)
            }
        },
        Kind::Peer => quote! {
            #[unsafe(no_mangle)]
            pub extern "C" fn #export(context: u32, peer: u32) {
                #path(context, peer)
            }
        },
        Kind::Shared => return None,
    })
}

/// `#[sdk_ext::testing::engines]`: put it (instead of `#[test]`) on an emulator test
/// `fn name(engine: Engine)`. It writes two tests, `name::native` and `name::wasm`, which
/// run the function on the native engine and on the built `.wasm`, with the module the test
/// file declares as `static MODULE: sdk_ext::testing::Module` (or the path given:
/// `#[engines(path::TO_MODULE)]`). `#[should_panic]` and `#[ignore]` apply to both.
#[proc_macro_attribute]
pub fn engines(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut function = parse_macro_input!(item as syn::ItemFn);
    let module: Tokens = if attr.is_empty() {
        quote!(super::MODULE)
    } else {
        let path = parse_macro_input!(attr as syn::Path);
        if path.leading_colon.is_none()
            && path
                .segments
                .first()
                .is_some_and(|s| s.ident != "crate" && s.ident != "super" && s.ident != "self")
        {
            quote!(super::#path)
        } else {
            quote!(#path)
        }
    };
    let (test_attrs, own_attrs): (Vec<_>, Vec<_>) = function
        .attrs
        .drain(..)
        .partition(|a| a.path().is_ident("should_panic") || a.path().is_ident("ignore"));
    function.attrs = own_attrs;
    let name = &function.sig.ident;
    // The function is a test body: clippy's test allowances (clippy.toml) apply to it as
    // they would to a `#[test]` function.
    quote! {
        #[allow(
            clippy::unwrap_used,
            clippy::expect_used,
            clippy::panic,
            clippy::indexing_slicing
        )]
        #function

        mod #name {
            #[test]
            #(#test_attrs)*
            fn native() {
                ::sdk_ext::testing::Engine::__run(
                    ::sdk_ext::testing::EngineKind::Native,
                    &#module,
                    super::#name,
                );
            }

            #[test]
            #(#test_attrs)*
            fn wasm() {
                ::sdk_ext::testing::Engine::__run(
                    ::sdk_ext::testing::EngineKind::Wasm,
                    &#module,
                    super::#name,
                );
            }
        }
    }
    .into()
}
