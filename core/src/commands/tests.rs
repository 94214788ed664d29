use super::*;

#[test]
fn unknown_commands_get_the_closest_name_and_bad_arguments_the_signature() {
    add_builtin(
        "testcmd.double",
        "Twice the number",
        &[("n", ParamKind::Int)],
        |_, args| match &args[0] {
            CommandValue::Int(n) => Ok(CommandValue::Int(n * 2)),
            _ => Err("not a number".into()),
        },
    );
    let error = call("testcmd.doubel", &["2"]).unwrap_err();
    assert_eq!(
        error,
        "Unknown command: testcmd.doubel (did you mean testcmd.double?)"
    );
    let error = call("testcmd.double", &["two"]).unwrap_err();
    assert!(error.contains("must be a whole number"), "{error}");
    assert!(error.ends_with("usage: testcmd.double n:int"), "{error}");
    let error = call("testcmd.double", &[]).unwrap_err();
    assert!(error.starts_with("expected 1 arguments, got 0"), "{error}");
    assert!(listing().contains("testcmd.double n:int\n    Twice the number (interpose)"));
    // Taken names are refused.
    let again = add(
        "testcmd.double",
        Command {
            owner: "someone".into(),
            help: String::new(),
            params: Vec::new(),
            handler: Handler::Builtin(Box::new(|_, _| Ok(CommandValue::None))),
        },
    );
    assert!(again.unwrap_err().contains("taken already by interpose"));
}
