# Shared by the example spells: finds the JSON string member named by the
# variable `field` in the one-line JSON object on input and prints its raw
# text (escapes kept, quotes removed).  With upper=1 every letter outside
# an escape sequence is upper-cased; with decode=1 the common escapes are
# turned back into characters (\n \t \r \" \\ \/; \uXXXX becomes '?').
# Prints nothing and exits 1 when the member is absent.
{
    line = line $0
}
END {
    pat = "\"" field "\"[ \t]*:[ \t]*\""
    if (!match(line, pat))
        exit 1
    s = substr(line, RSTART + RLENGTH)
    out = ""
    n = length(s)
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\"")
            break
        if (c == "\\") {
            e = substr(s, i + 1, 1)
            if (decode) {
                if (e == "n") out = out "\n"
                else if (e == "t") out = out "\t"
                else if (e == "r") out = out "\r"
                else if (e == "u") { out = out "?"; i += 4 }
                else out = out e
            } else if (e == "u") {
                out = out substr(s, i, 6)
                i += 4
            } else {
                out = out c e
            }
            i++
            continue
        }
        out = out (upper ? toupper(c) : c)
    }
    printf "%s", out
}
