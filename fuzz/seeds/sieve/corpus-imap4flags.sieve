require ["imap4flags","fileinto","variables"];
setflag "\\Seen";
addflag ["\\Flagged", "$Work"];
removeflag "\\Seen";
if hasflag :is "$work" { fileinto "has-work"; }
if hasflag :count "eq" :comparator "i;ascii-numeric" "2" { fileinto :flags "\\Answered Custom" "two-flags"; }
setflag "myvar" "\\Draft";
addflag "myvar" "Later";
if hasflag :contains "myvar" "Later" { keep :flags "${myvar}"; }
