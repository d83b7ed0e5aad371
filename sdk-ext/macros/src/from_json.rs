//! `#[derive(FromJson)]`: a config type's reader over `sdk_ext::json::Value`, from the
//! `#[serde(...)]` attributes the type already carries for schemars' `JsonSchema` derive, so
//! the schema and the parser read one description. Exactly the attributes sdk-ext's config
//! types use are supported; any other is a compile error (rather than silently ignored).
//!
//! - Structs with named fields. Container: `deny_unknown_fields`, `rename_all = "..."`.
//!   Field: `default`, `default = "path"`, `rename = "..."`. And sdk-ext's own container
//!   attribute `#[from_json(in_place)]`, for a struct whose field types are all `Default`:
//!   the members are read straight into a value built from the defaults (smaller code: no
//!   slot per field to move into the struct at the end); same behaviour.
//! - Enums whose variants are all unit variants (a JSON string). Container:
//!   `rename_all = "..."`. Variant: `rename = "..."`.

use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote};
use syn::{Data, DeriveInput, Error, Fields, LitStr};

/// serde's `rename_all` rules.
#[derive(Clone, Copy)]
enum Rule {
    Lower,
    Upper,
    Pascal,
    Camel,
    Snake,
    ScreamingSnake,
    Kebab,
    ScreamingKebab,
}

impl Rule {
    fn parse(s: &LitStr) -> Result<Self, Error> {
        Ok(match s.value().as_str() {
            "lowercase" => Rule::Lower,
            "UPPERCASE" => Rule::Upper,
            "PascalCase" => Rule::Pascal,
            "camelCase" => Rule::Camel,
            "snake_case" => Rule::Snake,
            "SCREAMING_SNAKE_CASE" => Rule::ScreamingSnake,
            "kebab-case" => Rule::Kebab,
            "SCREAMING-KEBAB-CASE" => Rule::ScreamingKebab,
            _ => return Err(Error::new(s.span(), "unknown rename_all rule")),
        })
    }

    /// A variant name (PascalCase), as serde renames it.
    fn variant(self, name: &str) -> String {
        let snake = || {
            let mut out = String::new();
            for (i, c) in name.chars().enumerate() {
                if c.is_uppercase() && i > 0 {
                    out.push('_');
                }
                out.extend(c.to_lowercase());
            }
            out
        };
        match self {
            Rule::Lower => name.to_ascii_lowercase(),
            Rule::Upper => name.to_ascii_uppercase(),
            Rule::Pascal => name.to_string(),
            Rule::Camel => {
                let mut c = name.chars();
                c.next()
                    .map(|f| f.to_lowercase().chain(c).collect())
                    .unwrap_or_default()
            }
            Rule::Snake => snake(),
            Rule::ScreamingSnake => snake().to_ascii_uppercase(),
            Rule::Kebab => snake().replace('_', "-"),
            Rule::ScreamingKebab => snake().replace('_', "-").to_ascii_uppercase(),
        }
    }

    /// A field name (snake_case), as serde renames it.
    fn field(self, name: &str) -> String {
        let pascal = || {
            let mut out = String::new();
            let mut upper = true;
            for c in name.chars() {
                if c == '_' {
                    upper = true;
                } else if upper {
                    out.extend(c.to_uppercase());
                    upper = false;
                } else {
                    out.push(c);
                }
            }
            out
        };
        match self {
            Rule::Lower | Rule::Snake => name.to_string(),
            Rule::Upper | Rule::ScreamingSnake => name.to_ascii_uppercase(),
            Rule::Pascal => pascal(),
            Rule::Camel => {
                let p = pascal();
                let mut c = p.chars();
                c.next()
                    .map(|f| f.to_lowercase().chain(c).collect())
                    .unwrap_or_default()
            }
            Rule::Kebab => name.replace('_', "-"),
            Rule::ScreamingKebab => name.replace('_', "-").to_ascii_uppercase(),
        }
    }
}

#[derive(Default)]
struct Container {
    deny_unknown_fields: bool,
    rename_all: Option<Rule>,
    /// `#[from_json(in_place)]`: every field type is `Default`; members are read straight
    /// into a value built from the defaults (see `expand`).
    in_place: bool,
}

enum Default_ {
    None,
    Trait,
    Path(syn::ExprPath),
}

struct Member {
    rename: Option<String>,
    default: Default_,
}

fn serde_attrs(
    attrs: &[syn::Attribute],
    mut each: impl FnMut(syn::meta::ParseNestedMeta<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    for attr in attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(&mut each)?;
    }
    Ok(())
}

fn container(input: &DeriveInput) -> Result<Container, Error> {
    let mut c = Container::default();
    serde_attrs(&input.attrs, |meta| {
        if meta.path.is_ident("deny_unknown_fields") {
            c.deny_unknown_fields = true;
        } else if meta.path.is_ident("rename_all") {
            c.rename_all = Some(Rule::parse(&meta.value()?.parse()?)?);
        } else {
            return Err(meta.error("FromJson does not support this serde attribute"));
        }
        Ok(())
    })?;
    for attr in input
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("from_json"))
    {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("in_place") {
                c.in_place = true;
                Ok(())
            } else {
                Err(meta.error("FromJson: the only from_json attribute is `in_place`"))
            }
        })?;
    }
    Ok(c)
}

fn member(attrs: &[syn::Attribute], field: bool) -> Result<Member, Error> {
    let mut m = Member {
        rename: None,
        default: Default_::None,
    };
    serde_attrs(attrs, |meta| {
        if meta.path.is_ident("rename") {
            m.rename = Some(meta.value()?.parse::<LitStr>()?.value());
        } else if field && meta.path.is_ident("default") {
            m.default = if meta.input.peek(syn::Token![=]) {
                let path: LitStr = meta.value()?.parse()?;
                Default_::Path(path.parse()?)
            } else {
                Default_::Trait
            };
        } else {
            return Err(meta.error("FromJson does not support this serde attribute"));
        }
        Ok(())
    })?;
    Ok(m)
}

/// The bare name of an identifier (`r#type` → `type`).
fn unraw(ident: &syn::Ident) -> String {
    let s = ident.to_string();
    s.strip_prefix("r#").map(str::to_string).unwrap_or(s)
}

/// A struct's `FromJson` impl: `from_json` is `from_json_without` skipping nothing, whose body
/// is `body` (it sees `value`, `at` and `skip`).
fn struct_impl(j: &Tokens, name: &syn::Ident, body: Tokens) -> Tokens {
    quote! {
        impl #j::FromJson for #name {
            fn from_json(
                value: &#j::Value,
                at: &#j::Path<'_>,
            ) -> ::core::result::Result<Self, #j::Error> {
                <Self as #j::FromJson>::from_json_without(value, at, None)
            }

            fn from_json_without(
                value: &#j::Value,
                at: &#j::Path<'_>,
                skip: ::core::option::Option<&str>,
            ) -> ::core::result::Result<Self, #j::Error> {
                #body
            }
        }
    }
}

pub fn expand(input: &DeriveInput) -> Result<Tokens, Error> {
    if !input.generics.params.is_empty() {
        return Err(Error::new_spanned(
            &input.generics,
            "FromJson: generic types are not supported",
        ));
    }
    let c = container(input)?;
    let name = &input.ident;
    let j = quote!(::sdk_ext::json);
    match &input.data {
        Data::Struct(s) => {
            let Fields::Named(named) = &s.fields else {
                return Err(Error::new_spanned(
                    &s.fields,
                    "FromJson: only structs with named fields",
                ));
            };
            if named.named.len() > 64 {
                return Err(Error::new_spanned(
                    name,
                    "FromJson: at most 64 fields (read_fields keeps a bit per field)",
                ));
            }
            let expected = format!("struct {name}");
            let deny = c.deny_unknown_fields;
            // The slots are one tuple of `Option`s, read through `&mut dyn Slot`; the struct
            // is then built by one `match` on the tuple. Every exit (a member's error, a
            // missing field, which `read_fields` reports) drops that one tuple: one drop
            // function per struct, not a drop sequence of the slots filled so far at each
            // `?` (most of a reader's code before).
            let mut keys = Vec::new();
            let mut required = Vec::new();
            let mut types = Vec::new();
            let mut arms = Vec::new();
            let mut parts = Vec::new();
            let mut pats = Vec::new();
            let mut inits = Vec::new();
            for (i, f) in named.named.iter().enumerate() {
                let ident = f
                    .ident
                    .as_ref()
                    .ok_or_else(|| Error::new_spanned(f, "unnamed"))?;
                let m = member(&f.attrs, true)?;
                let key = match (m.rename, c.rename_all) {
                    (Some(r), _) => r,
                    (None, Some(rule)) => rule.field(&unraw(ident)),
                    (None, None) => unraw(ident),
                };
                let index = syn::Index::from(i);
                let var = format_ident!("__v{i}");
                let ty = &f.ty;
                types.push(quote!(::core::option::Option<#ty>,));
                arms.push(quote!(&mut __s.#index as &mut dyn #j::Slot,));
                match m.default {
                    Default_::None => {
                        required.push(quote!(<#ty as #j::FromJson>::REQUIRED,));
                        parts.push(quote!(__s.#index.or_else(<#ty as #j::FromJson>::absent),));
                        pats.push(quote!(::core::option::Option::Some(#var),));
                        inits.push(quote!(#ident: #var,));
                    }
                    Default_::Trait => {
                        required.push(quote!(false,));
                        parts.push(quote!(__s.#index,));
                        pats.push(quote!(#var,));
                        inits.push(quote!(#ident: #var.unwrap_or_default(),));
                    }
                    Default_::Path(p) => {
                        required.push(quote!(false,));
                        parts.push(quote!(__s.#index,));
                        pats.push(quote!(#var,));
                        inits.push(quote!(#ident: match #var {
                            ::core::option::Option::Some(v) => v,
                            ::core::option::Option::None => #p(),
                        },));
                    }
                }
                keys.push(key);
            }
            if c.in_place {
                // Read in place: the value starts as every field's default (`default =
                // "path"`: that function's value) and each member is read over its field;
                // an error drops the one value. No slots to move out at the end.
                let mut init = Vec::new();
                let mut places = Vec::new();
                for f in &named.named {
                    let ident = f
                        .ident
                        .as_ref()
                        .ok_or_else(|| Error::new_spanned(f, "unnamed"))?;
                    let m = member(&f.attrs, true)?;
                    init.push(match m.default {
                        Default_::Path(p) => quote!(#ident: #p(),),
                        _ => quote!(#ident: ::core::default::Default::default(),),
                    });
                    places.push(quote!(&mut #j::InPlace(&mut __out.#ident) as &mut dyn #j::Slot,));
                }
                return Ok(struct_impl(
                    &j,
                    name,
                    quote! {
                        let mut __out = Self { #(#init)* };
                        #j::read_fields(
                            value,
                            at,
                            #expected,
                            &[#(#keys),*],
                            &[#(#required)*],
                            #deny,
                            skip,
                            &mut [#(#places)*],
                        )?;
                        Ok(__out)
                    },
                ));
            }
            let nones = types.iter().map(|_| quote!(::core::option::Option::None,));
            Ok(struct_impl(
                &j,
                name,
                quote! {
                    let mut __s: (#(#types)*) = (#(#nones)*);
                    #j::read_fields(
                        value,
                        at,
                        #expected,
                        &[#(#keys),*],
                        &[#(#required)*],
                        #deny,
                        skip,
                        &mut [#(#arms)*],
                    )?;
                    match (#(#parts)*) {
                        (#(#pats)*) => Ok(Self { #(#inits)* }),
                        // Not reached: `read_fields` refused a missing required field.
                        #[allow(unreachable_patterns)]
                        _ => Err(#j::Error::located(at, "missing field")),
                    }
                },
            ))
        }
        Data::Enum(e) => {
            if c.deny_unknown_fields {
                return Err(Error::new_spanned(
                    name,
                    "FromJson: deny_unknown_fields on an enum",
                ));
            }
            let expected = format!("enum {name}");
            let mut keys = Vec::new();
            let mut arms = Vec::new();
            let count = e.variants.len();
            if count == 0 {
                return Err(Error::new_spanned(
                    name,
                    "FromJson: an enum without variants",
                ));
            }
            for (i, v) in e.variants.iter().enumerate() {
                if !matches!(v.fields, Fields::Unit) {
                    return Err(Error::new_spanned(
                        v,
                        "FromJson: only unit variants (a JSON string)",
                    ));
                }
                let m = member(&v.attrs, false)?;
                let ident = &v.ident;
                keys.push(match (m.rename, c.rename_all) {
                    (Some(r), _) => r,
                    (None, Some(rule)) => rule.variant(&unraw(ident)),
                    (None, None) => unraw(ident),
                });
                arms.push(if i + 1 == count {
                    quote!(_ => Ok(Self::#ident),)
                } else {
                    quote!(#i => Ok(Self::#ident),)
                });
            }
            Ok(quote! {
                impl #j::FromJson for #name {
                    fn from_json(
                        value: &#j::Value,
                        at: &#j::Path<'_>,
                    ) -> ::core::result::Result<Self, #j::Error> {
                        match #j::read_variant(value, at, #expected, &[#(#keys),*])? {
                            #(#arms)*
                        }
                    }
                }
            })
        }
        Data::Union(_) => Err(Error::new_spanned(
            name,
            "FromJson: unions are not supported",
        )),
    }
}
