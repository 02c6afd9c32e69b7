require ["fileinto","variables"];
fileinto "Before";
set "x" "y";
redirect "${x}";
