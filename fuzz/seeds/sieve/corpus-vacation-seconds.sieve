require ["vacation","vacation-seconds"];
vacation :seconds 7200 :from "Alice <alice@example.org>" :handle "ooo" "Back soon.";
