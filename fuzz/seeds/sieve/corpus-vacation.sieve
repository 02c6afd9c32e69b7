require ["vacation","fileinto"];
if header :contains "subject" "Release" { fileinto "releases"; }
vacation :days 3 :subject "Out of office" :addresses ["alice@example.org", "a.smith@example.org"] "I am away until Monday.";
