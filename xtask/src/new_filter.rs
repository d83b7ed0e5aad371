//! `new-filter NAME`: (being written).
pub fn run(_args: &[String]) -> Result<(), String> {
    Err("new-filter: not yet available".into())
}
