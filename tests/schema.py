#!/usr/bin/env python3
"""Validates rule documents against kenbun's rule schema with an independent validator.

Usage: schema.py SCHEMA.json DOCS.jsonl
Checks the schema itself against the draft 2020-12 meta-schema, then prints one line: a character
per document of DOCS.jsonl (one JSON document per line), 1 when the schema accepts it, 0 when not.
Run by the unit test src/rule/schema/tests.rs (cargo test --lib), which compares with the parser.
"""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    out = []
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            out.append("1" if validator.is_valid(json.loads(line)) else "0")
    print("".join(out))


if __name__ == "__main__":
    main()
