require ["variables","fileinto"];
if header :matches "subject" "* tomorrow *" { fileinto "m1-${1}|${2}"; }
if header :matches "subject" "??voice*" { fileinto "m2-${1}${2}-${3}"; }
if header :matches "from" "*\\**" { fileinto "literal-star"; }
if header :matches "subject" "*" { set "s" "${0}"; }
if string :matches "${s}" "*e*e*" { fileinto "m3-${1}|${2}|${3}"; }
if header :matches :comparator "i;octet" "subject" "meeting*" { fileinto "octet-case"; }
