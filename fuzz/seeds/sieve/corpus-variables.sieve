require ["variables","fileinto","date"];
set :lower "who" "${0}";
if header :matches "from" "*<*@*>*" { set :lower "domain" "${3}"; set :upperfirst "user" "${2}"; }
if date :matches "date" "year" "*" { set "year" "${1}"; }
set :length "len" "${domain}";
set :quotewildcard "q" "a*b?c";
if string :is "${q}" "a\\*b\\?c" { set "quoted" "yes"; }
if string :matches "${domain}" "*.*" { fileinto "Archive/${year}/${1}-${len}-${quoted}-${user}"; }
set :upper :lowerfirst "mixed" "hello";
if string :is "${mixed}" "hELLO" { fileinto "modifiers-ok"; }
